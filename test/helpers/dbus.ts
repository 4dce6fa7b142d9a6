// A real dbus-daemon on a private bus, with its own config file, and the logind/systemd1 double.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { waitFor } from './sandbox.js';

export class PrivateBus {
  proc: ChildProcess | null = null;
  readonly socket: string;
  readonly address: string;
  private readonly config: string;

  constructor(dir: string) {
    this.socket = join(dir, 'system_bus_socket');
    this.address = `unix:path=${this.socket}`;
    this.config = join(dir, 'bus.conf');
    writeFileSync(
      this.config,
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>${this.address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="*"/>
  </policy>
</busconfig>
`,
    );
  }

  async start(): Promise<void> {
    this.proc = spawn('dbus-daemon', [`--config-file=${this.config}`, '--nofork', '--nopidfile', '--nosyslog'], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitFor(() => existsSync(this.socket), 'dbus-daemon socket');
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    p.kill('SIGKILL');
    await new Promise((r) => p.once('exit', r));
  }
}

export type Flavor = 'systemd256' | 'systemd249' | 'elogind';

export class FakeLogind {
  private n = 0;
  private readonly done = new Map<number, string>();
  /** SetUserLinger calls the double received, as of the last `linger-calls` command. */
  lingerCalls: [number, boolean][] = [];
  private constructor(readonly proc: ChildProcess) {}

  static async start(address: string, runtimeRoot: string, flavor: Flavor): Promise<FakeLogind> {
    const script = resolve(import.meta.dirname, 'fake-logind.mjs');
    const proc = spawn(process.execPath, [script, address, runtimeRoot, flavor], { stdio: ['pipe', 'pipe', 'inherit'] });
    const f = new FakeLogind(proc);
    let ready = false;
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      if (l === 'ready') ready = true;
      if (l.startsWith('linger-calls ')) f.lingerCalls = JSON.parse(l.slice('linger-calls '.length)) as [number, boolean][];
      const m = /^(ok|err) (\d+) ?(.*)$/.exec(l);
      if (m) f.done.set(Number(m[2]), m[1] === 'ok' ? '' : m[3]!);
    });
    await waitFor(() => ready || proc.exitCode !== null, 'the logind double');
    if (!ready) throw new Error('the logind double exited');
    return f;
  }

  /** Sends a command and waits until the double has carried it out. */
  async cmd(c: Record<string, unknown>): Promise<void> {
    const k = ++this.n;
    this.proc.stdin!.write(JSON.stringify(c) + '\n');
    await waitFor(() => this.done.has(k), `double: ${JSON.stringify(c)}`);
    const err = this.done.get(k);
    if (err) throw new Error(`double: ${err}`);
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    this.proc.kill('SIGKILL');
    await new Promise((r) => this.proc.once('exit', r));
  }
}
