// A temporary tree that stands in for /run/user and /snap, and the real daemon process on it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, readFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const IS_ROOT = process.geteuid?.() === 0;
/** The user the rundirs belong to: a real other user as root, oneself otherwise. */
export const USER = IS_ROOT ? 1000 : process.geteuid!();
export const GROUP = IS_ROOT ? 1234 : process.getegid!();
export const DAEMON = resolve(import.meta.dirname, '../../dist/bundle/rundird.mjs');

/** Marks a root-only test as skipped, and says so where the runner prints. */
export function rootOnly(name: string): boolean {
  if (!IS_ROOT) process.stderr.write(`SKIPPED (needs root): ${name}\n`);
  return !IS_ROOT;
}

/** Whether a command is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function stat(path: string): { uid: number; gid: number; mode: number; kind: string } | null {
  try {
    const s = lstatSync(path);
    return { uid: s.uid, gid: s.gid, mode: s.mode & 0o7777, kind: s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'symlink' : s.isFile() ? 'file' : 'other' };
  } catch {
    return null;
  }
}

export class Sandbox {
  readonly base: string;
  readonly runtimeRoot: string;
  readonly snapRoot: string;
  readonly config: string;

  constructor(base = tmpdir()) {
    this.base = mkdtempSync(join(base, 'rundird-test-'));
    this.runtimeRoot = join(this.base, 'run/user');
    this.snapRoot = join(this.base, 'snap');
    this.config = join(this.base, 'rundird.yaml');
    // As on a real system, users can reach the runtime root (mkdtemp's 0700 would stop them).
    chmodSync(this.base, 0o755);
    mkdirSync(this.runtimeRoot, { recursive: true, mode: 0o755 });
    mkdirSync(this.snapRoot);
    writeFileSync(this.config, 'snap-removal-grace: 0\n');
  }

  rundir(uid = USER): string {
    return join(this.runtimeRoot, String(uid));
  }

  addSnap(instance: string): void {
    mkdirSync(join(this.snapRoot, instance, 'x1'), { recursive: true });
    symlinkSync('x1', join(this.snapRoot, instance, 'current'));
  }

  removeSnap(instance: string): void {
    unlinkSync(join(this.snapRoot, instance, 'current'));
  }

  /** Makes a rundir that appears at once with its owner, as a tmpfs root would (mkdir aside, then rename in). */
  makeRundir(uid = USER, gid = GROUP, mode = 0o700): string {
    const tmp = join(this.base, `.staging-${uid}`);
    mkdirSync(tmp, { mode });
    if (IS_ROOT) chownSync(tmp, uid, gid);
    renameSync(tmp, this.rundir(uid));
    return this.rundir(uid);
  }

  privateDir(instance: string, uid = USER): string {
    return join(this.rundir(uid), `snap.${instance}`);
  }

  /** Unmounts whatever tests or doubles mounted inside (deepest first), then removes the tree. */
  cleanup(): void {
    if (IS_ROOT) {
      for (let round = 0; round < 5; round++) {
        const inside = readFileSync('/proc/self/mountinfo', 'utf8')
          .split('\n')
          .map((l) => l.split(' ')[4])
          .filter((p): p is string => !!p && (p === this.base || p.startsWith(this.base + '/')))
          .sort((a, b) => b.length - a.length);
        if (inside.length === 0) break;
        for (const p of inside) {
          try {
            execFileSync('umount', ['-l', p], { stdio: 'ignore' });
          } catch {
            // gone meanwhile
          }
        }
      }
    }
    rmSync(this.base, { recursive: true, force: true });
  }
}

export interface LogLine {
  event?: string;
  MESSAGE_ID?: string;
  msg: string;
  uid?: number;
  path?: string | string[];
  reason?: string;
  [k: string]: unknown;
}

let apiSeq = 0;

export class DaemonProcess {
  readonly lines: LogLine[] = [];
  stderr = '';
  exitCode: number | null = null;
  private exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      try {
        this.lines.push(JSON.parse(l) as LogLine);
      } catch {
        this.lines.push({ msg: l, event: 'non-json' });
      }
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((r) => child.on('exit', (code) => r((this.exitCode = code))));
  }

  /** The daemon, run under `wrap` (a command that execs the rest of its arguments) where given. */
  static spawn(args: string[], env: NodeJS.ProcessEnv = {}, wrap: string[] = []): DaemonProcess {
    // No system bus unless a test brings its own: the same inotify mode on every machine.
    const bus = { DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/nonexistent/rundird-test-bus' };
    // Each daemon its own API socket: tests run in parallel, and none may touch /run/rundird.
    // Beside the sandbox's runtime root where there is one, so that the records file kept
    // beside the socket goes with the sandbox.
    const rr = args.indexOf('--runtime-root');
    const apiDir = rr >= 0 && args[rr + 1] ? dirname(dirname(args[rr + 1]!)) : tmpdir();
    const api = args.includes('--api-socket') ? [] : ['--api-socket', join(apiDir, `api-${process.pid}-${++apiSeq}.sock`)];
    // No code cache unless a test gives one ($CACHE_DIRECTORY, as systemd's CacheDirectory= sets it).
    const inherited = { ...process.env };
    delete inherited.CACHE_DIRECTORY;
    const argv = [process.execPath, DAEMON, ...args, ...api];
    const [cmd, ...rest] = [...wrap, ...argv];
    return new DaemonProcess(spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...inherited, ...bus, ...env } }));
  }

  /** Starts the daemon on a sandbox and waits until it has done its first full pass. */
  static async start(sb: Sandbox, extra: string[] = []): Promise<DaemonProcess> {
    const d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, ...extra]);
    await d.waitForEvent('daemon-started');
    return d;
  }

  events(name: string): LogLine[] {
    return this.lines.filter((l) => l.event === name);
  }

  async waitForEvent(name: string, pred: (l: LogLine) => boolean = () => true, timeoutMs = 10_000): Promise<LogLine> {
    await waitFor(() => this.events(name).some(pred) || this.exitCode !== null, `log event ${name}`, timeoutMs);
    const hit = this.events(name).find(pred);
    if (!hit) throw new Error(`daemon exited (${this.exitCode}) before ${name}: ${this.stderr}`);
    return hit;
  }

  /** Waits until at least n records of this event have arrived (records may trail the files on disk). */
  async waitForCount(name: string, n: number, pred: (l: LogLine) => boolean = () => true): Promise<LogLine[]> {
    await waitFor(() => this.events(name).filter(pred).length >= n || this.exitCode !== null, `${n} × ${name}`);
    return this.events(name).filter(pred);
  }

  wait(): Promise<number | null> {
    return this.exited;
  }

  async stop(): Promise<number | null> {
    if (this.exitCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}
