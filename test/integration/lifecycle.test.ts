// The daemon process as an admin meets it: flags, config errors, reload and stop.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { DaemonProcess, Sandbox, stat, waitFor } from '../helpers/sandbox.js';

let sb: Sandbox;
let d: DaemonProcess | null = null;
beforeEach(() => {
  sb = new Sandbox();
  sb.addSnap('alpha');
  sb.addSnap('beta');
});
afterEach(async () => {
  await d?.stop();
  d = null;
  sb.cleanup();
});

const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const p = DaemonProcess.spawn(args, env);
  const code = await p.wait();
  return { code, stderr: p.stderr };
};

describe('one instance a runtime root', () => {
  it('a second rundird on the same runtime root refuses to start, naming the first, touching nothing; a crash leaves no stale lock', async () => {
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    await waitFor(() => stat(sb.privateDir('alpha')) !== null, 'the first serves');
    // The second: another API socket (so another records file), the same runtime root.
    const second = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot]);
    expect(await second.wait()).toBe(75);
    expect(second.stderr).toContain(`rundird: another rundird (PID ${d.child.pid}) supervises ${sb.runtimeRoot} already; this one exits and touches nothing`);
    expect(second.lines).toEqual([]); // not one record: it read and wrote nothing
    const api = String(second.child.spawnargs[second.child.spawnargs.indexOf('--api-socket') + 1]);
    expect(stat(api)).toBeNull();
    // The first is killed outright: the kernel drops its lock, and a new one starts at once.
    d.child.kill('SIGKILL');
    await d.wait();
    d = await DaemonProcess.start(sb);
    expect(d.exitCode).toBeNull();
  });
});

describe('command line and configuration', () => {
  it('refuses a bad config with exit 78 and a message naming the file, line and key', async () => {
    writeFileSync(sb.config, 'snap-root: /snap\nprivate-dirs:\n  exclude: "firefox"\n');
    const r = await run(['--config', sb.config]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`${sb.config}:3: key "private-dirs.exclude": expected a list`);
  });

  it('takes the config file from RUNDIRD_CONFIG', async () => {
    writeFileSync(sb.config, 'log-level: shouting\n');
    const r = await run([], { RUNDIRD_CONFIG: sb.config });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`${sb.config}:1: key "log-level"`);
  });

  it('refuses a missing explicit config file', async () => {
    const r = await run(['--config', `${sb.base}/nope.yaml`]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('nope.yaml: cannot read');
  });

  it('a FIFO or an oversized file as the config is refused at once, never waited on; /dev/null is empty', async () => {
    execFileSync('mkfifo', [`${sb.base}/fifo.yaml`]);
    let r = await run(['--check-config', '--config', `${sb.base}/fifo.yaml`]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('fifo.yaml: cannot read: not a regular file');
    writeFileSync(`${sb.base}/big.yaml`, `# ${'x'.repeat(1024 * 1024)}\n`);
    r = await run(['--check-config', '--config', `${sb.base}/big.yaml`]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('larger than');
    r = await run(['--check-config', '--config', '/dev/null']);
    expect(r.code).toBe(0);
  });

  it('refuses an unknown flag with exit 64 and the usage', async () => {
    const r = await run(['--runtime-rot', '/x']);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('Usage: rundird');
  });

  it('refuses a relative path given as a flag', async () => {
    const r = await run(['--config', sb.config, '--runtime-root', 'run/user']);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('runtime-root');
  });

  it('--check-config says which file it read and prints the configuration in force as YAML, in the file\'s own key names', async () => {
    const p = DaemonProcess.spawn(['--config', sb.config, '--check-config', '--snap-root', '/tmp/x']);
    expect(await p.wait()).toBe(0);
    const out = p.lines.map((l) => l.msg).join('\n');
    expect(out).toContain(`# ${sb.config}: OK`);
    expect(out).toMatch(/^snap-root: \/tmp\/x$/m); // the flag, in force
    expect(out).toMatch(/^snap-removal-grace: 0$/m); // the file's
    expect(out).not.toMatch(/snapRoot|privateDirs/); // no internal names
    // No file at the default path: said, and the defaults printed.
    const q = DaemonProcess.spawn(['--check-config'], { RUNDIRD_CONFIG: '' });
    expect(await q.wait()).toBe(0);
    expect(q.lines.map((l) => l.msg).join('\n')).toMatch(/^# \/etc\/rundird\/rundird\.yaml: (OK|not there; the defaults apply)$/m);
  });

  it('SIGHUP with a bad file keeps the old config and says why; a good one takes effect', async () => {
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    expect(stat(sb.privateDir('beta'))).not.toBeNull();

    writeFileSync(sb.config, 'private-dirs:\n  exclude: [beta\n');
    d.child.kill('SIGHUP');
    const rej = await d.waitForEvent('config-rejected');
    expect(rej.msg).toContain(sb.config);
    // Still working with the old config: beta is still kept.
    sb.addSnap('gamma');
    await waitFor(() => stat(sb.privateDir('gamma')) !== null, 'gamma under the old config');

    writeFileSync(sb.config, 'private-dirs:\n  exclude: [delta]\n');
    d.child.kill('SIGHUP');
    await d.waitForEvent('config-reloaded');
    sb.addSnap('delta');
    sb.addSnap('epsilon');
    await waitFor(() => stat(sb.privateDir('epsilon')) !== null, 'epsilon under the new config');
    expect(stat(sb.privateDir('delta'))).toBeNull();
    expect(d.exitCode).toBeNull();
  });

  it('SIGTERM stops it cleanly with exit 0', async () => {
    d = await DaemonProcess.start(sb);
    expect(await d.stop()).toBe(0);
    expect(d.events('daemon-stopping')).toHaveLength(1);
  });

  it('makes the runtime root if it is missing (no logind, no tmpfiles)', async () => {
    const p = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', `${sb.base}/fresh-root`, '--snap-root', sb.snapRoot]);
    d = p;
    await p.waitForEvent('daemon-started');
    expect(stat(`${sb.base}/fresh-root`)).toMatchObject({ kind: 'dir', mode: 0o755 });
  });

  it('runs with no snap root at all (no snapd on the system)', async () => {
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', `${sb.base}/no-snap`]);
    const started = await d.waitForEvent('daemon-started');
    expect(started.instances).toBe(0);
  });

  it('a snap root made after it started (snapd installed later) is followed from then on', async () => {
    const snapRoot = `${sb.base}/late-snap`;
    sb.makeRundir();
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', snapRoot]);
    await d.waitForEvent('daemon-started');
    mkdirSync(`${snapRoot}/late/x1`, { recursive: true });
    symlinkSync('x1', `${snapRoot}/late/current`);
    await waitFor(() => stat(sb.privateDir('late'))?.kind === 'dir', 'the private dir of a snap in the late snap root');
  });
});
