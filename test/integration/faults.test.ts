// The machine's own faults (issue 27): limits a daemon meets on a small device or a busy host.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCtl } from '../helpers/ctl.js';
import { DaemonProcess, IS_ROOT, hasCommand, waitFor } from '../helpers/sandbox.js';

const PROJECT = resolve(import.meta.dirname, '../..');
let d: DaemonProcess | null = null;
let holder: ChildProcess | null = null;
let base = '';
afterEach(async () => {
  holder?.kill('SIGKILL');
  holder = null;
  await d?.stop();
  d = null;
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('faults of the machine', () => {
  it.skipIf(!IS_ROOT || !hasCommand('setpriv'))('no inotify instance left: the runtime root is read on a timer, said once, shown by status (exit 1), and watched again when it can be (needs root: a uid of its own and setpriv)', async () => {
    // The daemon runs as a uid of its own, whose inotify instances (a per-user limit, 128 by
    // default) a helper of that uid holds every one of; other tests' processes are untouched.
    const U = 4321;
    base = mkdtempSync(join(tmpdir(), 'rundird-faults-'));
    chmodSync(base, 0o755);
    const root = join(base, 'run/user');
    const api = join(base, 'api');
    for (const dir of [root, api, join(base, 'snap/hello/x1')]) mkdirSync(dir, { recursive: true });
    symlinkSync('x1', join(base, 'snap/hello/current'));
    chownSync(root, U, U);
    chownSync(api, U, U);
    holder = spawn(process.execPath, ['-e', "const l = require('koffi').load('libc.so.6'); const f = l.func('int inotify_init1(int)'); let n = 0; while (f(0) >= 0) n++; console.log('held ' + n); setInterval(() => {}, 60000);"], { cwd: PROJECT, uid: U, gid: U, stdio: ['ignore', 'pipe', 'inherit'] });
    let held = '';
    holder.stdout!.on('data', (b: Buffer) => (held += b.toString()));
    await waitFor(() => held.startsWith('held'), 'every inotify instance of the uid held');
    d = DaemonProcess.spawn(['--config', '/dev/null', '--runtime-root', root, '--snap-root', join(base, 'snap'), '--api-socket', join(api, 'api.sock')], {}, ['setpriv', `--reuid=${U}`, `--regid=${U}`, '--clear-groups']);
    const degraded = await d.waitForEvent('source-degraded', (l) => l.source === 'runtime-root');
    expect(String(degraded.msg)).toMatch(/cannot watch .*\(EMFILE.*\): new rundirs are found by reading it/);
    await d.waitForEvent('daemon-started');
    const st = await runCtl(['--api-socket', join(api, 'api.sock'), 'status']);
    expect(st.code).toBe(1);
    expect(st.out).toMatch(/! runtime-root degraded since .*: .*EMFILE/);
    // A rundir that comes meanwhile is found by reading, not by its event.
    mkdirSync(join(root, String(U)), { mode: 0o700 });
    chownSync(join(root, String(U)), U, U);
    await waitFor(() => existsSync(join(root, String(U), 'snap.hello')), 'its private dir made', 15_000);
    // The instances come back: watched again, said, and status is clean of it.
    holder.kill('SIGKILL');
    holder = null;
    await d.waitForEvent('source-degraded', (l) => l.source === 'runtime-root' && l.restored === true, 45_000);
    expect(d.events('source-degraded').filter((l) => l.source === 'runtime-root' && !l.restored)).toHaveLength(1);
    expect((await runCtl(['--api-socket', join(api, 'api.sock'), 'status'])).out).not.toContain('runtime-root degraded');
  }, 90_000);
});
