// The machine's own faults (issue 27): limits a daemon meets on a small device or a busy host.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCtl } from '../helpers/ctl.js';
import { DaemonProcess, GROUP, IS_ROOT, Sandbox, USER, hasCommand, waitFor } from '../helpers/sandbox.js';
import { execFileSync } from 'node:child_process';
import { readdirSync, unlinkSync, writeFileSync } from 'node:fs';

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
  it.skipIf(!IS_ROOT)("a user's rundir out of inodes: what fits is made, the rest said once and made when the user frees some (needs root: a small tmpfs)", async () => {
    const sb = new Sandbox();
    for (const s of ['alpha', 'beta', 'gamma']) sb.addSnap(s);
    const rd = sb.makeRundir();
    // Five inodes: the root, two files of the user's, and room for two of the three private dirs.
    execFileSync('mount', ['-t', 'tmpfs', '-o', `mode=0700,uid=${USER},gid=${GROUP},nr_inodes=5,size=1m`, 'tmpfs', rd]);
    try {
      for (const f of ['a', 'b']) writeFileSync(join(rd, f), '');
      d = await DaemonProcess.start(sb);
      const full = await d.waitForEvent('privdir-refused', (l) => String(l.msg).includes('ENOSPC'));
      expect(readdirSync(rd).filter((n) => n.startsWith('snap.'))).toHaveLength(2);
      // The user frees room: the last one is made, and nothing of a half-made one is left.
      for (const f of ['a', 'b']) unlinkSync(join(rd, f));
      await waitFor(() => ['alpha', 'beta', 'gamma'].every((s) => existsSync(sb.privateDir(s))), 'all three private dirs');
      expect(readdirSync(rd).filter((n) => n.startsWith('.rundird-'))).toEqual([]);
      expect(d.events('privdir-refused').filter((l) => String(l.msg).includes('ENOSPC'))).toEqual([full]);
    } finally {
      await d?.stop();
      d = null;
      execFileSync('umount', [rd]);
      sb.cleanup();
    }
  });

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
