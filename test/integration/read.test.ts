// Reading a rundir on a real tmpfs: a directory's size there counts its entries, which lets a
// small rundir be listed in one readdir; the entry limit must hold all the same.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, lstatSync, mkdirSync, mkdtempSync, openSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listRundir, lstatBelowRoot, OVERFULL, readMounts, readRundir, UNKNOWN } from '../../src/world/read.js';
import { rootOnly } from '../helpers/sandbox.js';
import { at, fdPath } from '../../src/effects/safefs.js';

describe('reading a rundir on tmpfs', () => {
  let base = '';
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'rundird-read-'));
  });
  afterEach(() => {
    try {
      execFileSync('umount', [join(base, 'run')], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
    rmSync(base, { recursive: true, force: true });
  });

  it('lists within the limit, says OVERFULL past it, also when entries arrive after the size was read', () => {
    if (rootOnly('mounting a tmpfs')) return;
    const root = join(base, 'run');
    mkdirSync(root);
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', root]);
    const rd = join(root, '5');
    mkdirSync(rd);
    for (const n of ['snap.a', 'snap.b']) mkdirSync(join(rd, n));
    writeFileSync(join(rd, 'f0'), '');
    const small = lstatSync(rd);
    expect(small.size).toBe(20 * (3 + 2)); // what the fast path relies on
    expect((listRundir(rd, small, true, 3) as string[]).sort()).toEqual(['f0', 'snap.a', 'snap.b']);
    expect(listRundir(rd, small, true, 2)).toBe(OVERFULL);
    // Files made after the size was read: the list is still held to the limit.
    for (let i = 1; i < 10; i++) writeFileSync(join(rd, `f${i}`), '');
    expect(listRundir(rd, small, true, 5)).toBe(OVERFULL);
    expect(listRundir(rd, lstatSync(rd), true, 5)).toBe(OVERFULL);
    expect(listRundir(rd, lstatSync(rd), false, 5)).toBe(OVERFULL);
    expect(listRundir(rd, lstatSync(rd), true, 12)).toHaveLength(12);

    // readRundir finds the tmpfs in the mount table, and says the same either way.
    const mounts = readMounts('/proc/self/mountinfo');
    const names = ['snap.a', 'snap.b', 'snap.c'];
    const within = readRundir(root, 5, names, mounts, 100);
    const over = readRundir(root, 5, names, mounts, 3);
    expect([...within.entries].map(([n, s]) => [n, s?.kind ?? null])).toEqual([['snap.a', 'dir'], ['snap.b', 'dir'], ['snap.c', null]]);
    expect(over.entries).toEqual(within.entries);
  });

  it("names this process's own descriptors (by its pid where /proc is its own)", () => {
    const fd = openSync(base, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      expect(fdPath(fd)).toBe(`/proc/${process.pid}/fd/${fd}`);
      expect(readlinkSync(fdPath(fd))).toBe(base);
      mkdirSync(at(fd, 'made'));
      expect(statSync(join(base, 'made')).isDirectory()).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  it('walks a path a user named from the rundir down: never through a symlink, never out of the runtime root', () => {
    const root = join(base, 'run');
    mkdirSync(join(root, '5/d'), { recursive: true });
    writeFileSync(join(root, '5/d/f'), '');
    symlinkSync('/etc', join(root, '5/link'));
    const mounts = readMounts('/proc/self/mountinfo');
    const at = (p: string) => {
      const r = lstatBelowRoot(mounts, root, p);
      return r === UNKNOWN ? 'unknown' : r === null ? null : r.kind;
    };
    expect([at(join(root, '5/d/f')), at(join(root, '5/d/')), at(join(root, '5/none/x')), at(join(root, '5/d/f/x'))]).toEqual(['file', 'dir', null, null]);
    // Through a symlink (lstat of the whole path would follow it), out of the root, or the root itself: not walked.
    expect([at(join(root, '5/link/passwd')), at(join(root, '5/link')), `${at(`${root}/5/../../etc/passwd`)}`, at(root), at('/etc/passwd')]).toEqual(['unknown', 'symlink', 'unknown', 'unknown', 'unknown']);
  });
});
