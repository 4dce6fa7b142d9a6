// Attacks on every place the daemon writes: a user owns the rundir and can plant or swap anything.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chownSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { DaemonProcess, GROUP, IS_ROOT, Sandbox, USER, rootOnly, stat, waitFor } from '../helpers/sandbox.js';

let sb: Sandbox;
let d: DaemonProcess | null = null;
/** A directory the daemon must never change: root's 0755 as root, else our own with 0755. */
let target: string;

beforeEach(() => {
  sb = new Sandbox();
  sb.addSnap('victim');
  target = join(sb.base, 'precious');
  mkdirSync(target, { mode: 0o755 });
});

afterEach(async () => {
  await d?.stop();
  d = null;
  sb.cleanup();
});

const untouched = () => {
  const s = stat(target)!;
  expect(s).toMatchObject({ uid: IS_ROOT ? 0 : USER, mode: 0o755 });
  expect(readdirSync(target)).toEqual([]);
};

describe('attacks', () => {
  it('a symlink planted at snap.X pointing at a root-owned directory: not followed, reported', async () => {
    sb.makeRundir();
    symlinkSync(target, sb.privateDir('victim'));
    d = await DaemonProcess.start(sb);
    const r = await d.waitForEvent('privdir-refused');
    expect(r).toMatchObject({ reason: 'privdir-symlink', instance: 'victim', uid: USER });
    untouched();
    expect(stat(sb.privateDir('victim'))!.kind).toBe('symlink');
  });

  it('a symlink planted at snap.X while the daemon runs: not followed', async () => {
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    // The daemon re-makes the dir at once; plant the link by rename until it wins the race.
    symlinkSync(target, sb.privateDir('victim') + '.tmp');
    await waitFor(() => {
      try {
        rmSync(sb.privateDir('victim'), { recursive: true, force: true });
        renameSync(sb.privateDir('victim') + '.tmp', sb.privateDir('victim'));
        return true;
      } catch {
        return false;
      }
    }, 'planting the symlink');
    await d.waitForEvent('privdir-refused', (l) => l.reason === 'privdir-symlink');
    untouched();
  });

  it('a symlink at the rundir itself: nothing written through it', async () => {
    symlinkSync(target, sb.rundir());
    d = await DaemonProcess.start(sb);
    const r = await d.waitForEvent('rundir-refused');
    expect(r).toMatchObject({ status: 'symlink', uid: USER });
    sb.addSnap('another'); // another pass over the same rundir
    await d.waitForEvent('snaps-changed', (l) => (l.added as string[]).includes('another'));
    untouched();
    expect(d.events('rundir-refused')).toHaveLength(1); // said once, not per pass
  });

  it('a file at snap.X: left untouched and reported once', async () => {
    sb.makeRundir();
    writeFileSync(sb.privateDir('victim'), 'data', { mode: 0o644 });
    d = await DaemonProcess.start(sb);
    await d.waitForEvent('privdir-refused', (l) => l.reason === 'privdir-not-dir');
    sb.addSnap('another');
    await waitFor(() => stat(sb.privateDir('another')) !== null, 'another pass');
    expect(stat(sb.privateDir('victim'))).toMatchObject({ kind: 'file', mode: 0o644 });
    expect(d.events('privdir-refused')).toHaveLength(1);
  });

  it.skipIf(rootOnly('a directory owned by another UID'))('a directory of another UID at snap.X: owner and mode unchanged, reported', async () => {
    sb.makeRundir();
    mkdirSync(sb.privateDir('victim'), { mode: 0o755 });
    chownSync(sb.privateDir('victim'), 1001, 1001);
    d = await DaemonProcess.start(sb);
    await d.waitForEvent('privdir-refused', (l) => l.reason === 'privdir-foreign-owner');
    expect(stat(sb.privateDir('victim'))).toMatchObject({ uid: 1001, gid: 1001, mode: 0o755 });
  });

  it.skipIf(rootOnly('a rundir owned by another user'))('a rundir owned by a user other than its name says: nothing written', async () => {
    sb.makeRundir(USER);
    chownSync(sb.rundir(), 1001, 1001);
    d = await DaemonProcess.start(sb);
    await d.waitForEvent('rundir-refused', (l) => l.status === 'foreign-owner');
    expect(readdirSync(sb.rundir())).toEqual([]);
  });

  it('a rename race: snap.X swapped between a directory and a symlink in a loop while the daemon works', async () => {
    sb.makeRundir();
    for (let i = 0; i < 10; i++) sb.addSnap(`extra${i}`);
    d = await DaemonProcess.start(sb);
    const rd = sb.rundir();
    // The attacker: a separate process, so that the two really run at the same time.
    const script = `
      const fs = require('fs'); const p = ${JSON.stringify(join(rd, 'snap.victim'))}; const t = ${JSON.stringify(target)};
      const sl = p + '.sl', dr = p + '.dr', aside = p + '.aside'; const rm = (x) => fs.rmSync(x, { recursive: true, force: true });
      const end = Date.now() + 1500; let n = 0;
      while (Date.now() < end) {
        // A 0755 dir at the name: the daemon reads it and plans to fix its mode ...
        rm(dr); fs.mkdirSync(dr, { mode: 0o755 }); rm(p);
        try { fs.renameSync(dr, p); } catch {}
        // ... and right away it becomes a symlink to the precious dir (two renames, microseconds).
        rm(sl); fs.symlinkSync(t, sl); rm(aside);
        try { fs.renameSync(p, aside); fs.renameSync(sl, p); n++; } catch {}
        rm(aside);
      }
      rm(sl); rm(dr);
      console.log(n);`;
    const attacker = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'], ...(IS_ROOT ? { uid: USER, gid: GROUP } : {}) });
    let rounds = '';
    attacker.stdout.on('data', (b: Buffer) => (rounds += b.toString()));
    // Keep the daemon busy on this rundir throughout.
    const churn = setInterval(() => {
      try {
        rmSync(sb.privateDir('extra0'), { recursive: true, force: true });
      } catch {
        /* the daemon may be re-making it */
      }
    }, 5);
    await new Promise((r) => attacker.on('exit', r));
    clearInterval(churn);
    untouched();
    // The daemon re-makes the dir within microseconds, so the attacker wins only now and then.
    expect(Number(rounds)).toBeGreaterThan(0);
    // And it converges once the attacker stops.
    rmSync(sb.privateDir('victim'), { recursive: true, force: true });
    await waitFor(() => stat(sb.privateDir('victim'))?.kind === 'dir' && stat(sb.privateDir('victim'))!.mode === 0o700, 'convergence');
    await waitFor(() => stat(sb.privateDir('extra0'))?.kind === 'dir', 'convergence of extra0');
    expect(d.exitCode).toBeNull();
  });

  it('a swapped runtime root entry does not move writes elsewhere: renaming the rundir away mid-life', async () => {
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    renameSync(sb.rundir(), join(sb.base, 'moved'));
    symlinkSync(target, sb.rundir());
    await d.waitForEvent('rundir-refused', (l) => l.status === 'symlink');
    untouched();
  });
});
