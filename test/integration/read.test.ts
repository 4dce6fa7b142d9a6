// Reading a rundir on a real tmpfs through descriptors: the entry limit holds, nothing is
// followed, and a FUSE mount the mount table has not shown yet is never asked anything.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chownSync, closeSync, constants, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { mountHangingFuse } from '../helpers/fuse.js';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { listAt, lstatBelowRoot, MOUNT_POINT, OVERFULL, readMounts, readRundir as readWith, RundirWalker, UNKNOWN, type MountSnapshot } from '../../src/world/read.js';

/** readRundir through a walker of its own, as a sync reads it. */
function readRundir(rootFd: number, root: string, uid: number, names: string[], mounts: MountSnapshot, max: number, final = true) {
  const w = new RundirWalker(rootFd, uid);
  try {
    return readWith(w, root, uid, names, mounts, max, final);
  } finally {
    w.close();
  }
}
import { GROUP, rootOnly, USER, IS_ROOT } from '../helpers/sandbox.js';
import { mkdirAt, openTrustedDir } from '../../src/effects/safefs.js';
import * as libc from '../../src/sys/libc.js';

const asRoot = process.getuid?.() === 0;

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

  it('lists within the limit, says OVERFULL past it, also when entries arrive after a first listing', () => {
    const root = join(base, 'run');
    mkdirSync(root);
    const rd = join(root, '5');
    mkdirSync(rd);
    for (const n of ['snap.a', 'snap.b']) mkdirSync(join(rd, n));
    writeFileSync(join(rd, 'f0'), '');
    const fd = libc.openat(libc.AT_FDCWD, rd, libc.O_PATH | libc.O_DIRECTORY);
    try {
      expect((listAt(fd, 3) as string[]).sort()).toEqual(['f0', 'snap.a', 'snap.b']);
      expect(listAt(fd, 2)).toBe(OVERFULL);
      for (let i = 1; i < 10; i++) writeFileSync(join(rd, `f${i}`), '');
      expect(listAt(fd, 5)).toBe(OVERFULL);
      expect(listAt(fd, 12)).toHaveLength(12);
    } finally {
      libc.close(fd);
    }
    // readRundir says the same either way.
    const mounts = readMounts('/proc/self/mountinfo');
    const names = ['snap.a', 'snap.b', 'snap.c'];
    const rootFd = openTrustedDir(root);
    try {
      const within = readRundir(rootFd, root, 5, names, mounts, 100);
      const over = readRundir(rootFd, root, 5, names, mounts, 3);
      expect([...within.entries].map(([n, s]) => [n, s?.kind ?? null])).toEqual([['snap.a', 'dir'], ['snap.b', 'dir'], ['snap.c', null]]);
      expect(over.entries).toEqual(within.entries);
      expect(within.node).toMatchObject({ kind: 'dir', ino: lstatSync(rd).ino, dev: lstatSync(rd).dev, btime: lstatSync(rd).birthtimeMs });
    } finally {
      libc.close(rootFd);
    }
  });

  it.skipIf(!IS_ROOT)('finds the tmpfs on a rundir in the mount table (needs root: mounting a tmpfs)', () => {
    const root = join(base, 'run');
    mkdirSync(join(root, '5'), { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', join(root, '5')]);
    mkdirSync(join(root, '5/snap.a'));
    const rootFd = openTrustedDir(root);
    try {
      const before = { top: new Map(), errors: [] };
      // A table read before the mount: the reader asks for it again, and with it takes the mount as it is.
      expect(readRundir(rootFd, root, 5, ['snap.a'], before, 100, false)).toMatchObject({ unknownMount: true, entries: new Map() });
      const now = readRundir(rootFd, root, 5, ['snap.a'], readMounts('/proc/self/mountinfo'), 100, false);
      expect(now.unknownMount).toBeUndefined();
      expect(now.mount?.fsType).toBe('tmpfs');
      expect(now.entries.get('snap.a')?.kind).toBe('dir');
    } finally {
      libc.close(rootFd);
      execFileSync('umount', [join(root, '5')]);
    }
  });

  it('makes entries through a descriptor, with no path through /proc', () => {
    const fd = openSync(base, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      mkdirAt(fd, 'made', 0o700);
      expect(statSync(join(base, 'made')).isDirectory()).toBe(true);
      expect(() => mkdirAt(fd, '../escape', 0o700)).toThrow(/refusing entry name/);
    } finally {
      closeSync(fd);
    }
  });

  it.skipIf(!asRoot || !existsSync('/dev/fuse'))('a FUSE mount that never answers, made after the mount table was read, is never asked anything (needs root and /dev/fuse)', async () => {
    const root = join(base, 'run');
    const rd = join(root, String(USER));
    mkdirSync(join(rd, 'snap.a'), { recursive: true });
    mkdirSync(join(rd, 'snap.b'));
    chownSync(rd, USER, GROUP);
    chownSync(join(rd, 'snap.a'), USER, GROUP);
    const table = readMounts('/proc/self/mountinfo'); // read before the mount, as a sync racing it would have
    const fuse = await mountHangingFuse(join(rd, 'snap.a'), USER, GROUP);
    try {
      // The reads run in a child process: one that asked the server would hang in the kernel,
      // where no test timeout reaches; the child is then killed and the test fails.
      writeFileSync(join(base, 'table.json'), JSON.stringify([...table.top]));
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', `
        const { readRundir: readWith, RundirWalker, readMounts, lstatBelowRoot, MOUNT_POINT, UNKNOWN } = await import(${JSON.stringify(resolve(import.meta.dirname, '../../dist/src/world/read.js'))});
        const readRundir = (fd, ...a) => readWith(new RundirWalker(fd, a[1]), ...a);
        const { openTrustedDir } = await import(${JSON.stringify(resolve(import.meta.dirname, '../../dist/src/effects/safefs.js'))});
        const fs = await import('node:fs');
        const table = { top: new Map(JSON.parse(fs.readFileSync(${JSON.stringify(join(base, 'table.json'))}, 'utf8'))), errors: [] };
        const rootFd = openTrustedDir(${JSON.stringify(root)});
        const kind = (st) => st === MOUNT_POINT ? 'MOUNT_POINT' : st === UNKNOWN ? 'UNKNOWN' : st?.kind ?? null;
        const first = readRundir(rootFd, ${JSON.stringify(root)}, ${USER}, ['snap.a', 'snap.b'], table, 100, false);
        const second = readRundir(rootFd, ${JSON.stringify(root)}, ${USER}, ['snap.a'], readMounts('/proc/self/mountinfo'), 100, true);
        console.log(JSON.stringify({
          unknown: first.unknownMount, a: kind(first.entries.get('snap.a')), b: kind(first.entries.get('snap.b')),
          again: kind(second.entries.get('snap.a')),
          walk: kind(lstatBelowRoot(table, ${JSON.stringify(root)}, ${JSON.stringify(join(rd, 'snap.a/wayland-0'))})),
        }));`], { timeout: 15_000, killSignal: 'SIGKILL', encoding: 'utf8' });
      expect(child.error?.message ?? '', `the read hung or failed: ${child.stderr}`).toBe('');
      // statx of the mount's root answers from the kernel; the table read again says fuse: never entered either way.
      expect(JSON.parse(child.stdout)).toEqual({ unknown: true, a: 'MOUNT_POINT', b: 'dir', again: 'MOUNT_POINT', walk: 'UNKNOWN' });
    } finally {
      fuse.close();
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
