// The runtime root is configured and trusted. systemd's tmpfiles makes /run/user; without
// logind nothing may have, so rundird makes it (0755 root, as tmpfiles would), parent first.
// One rundird a runtime root: two would be two root writers in the same directories, sharing
// one records file. The first holds a flock on the runtime root itself (released by the kernel
// when it dies, so a crash leaves nothing stale behind).
import { mkdirSync, readFileSync } from 'node:fs';
import * as libc from '../sys/libc.js';
import { flockHolder } from '../world/procfs.js';

export function ensureRuntimeRoot(path: string): void {
  try {
    mkdirSync(path, { mode: 0o755 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

/** The runtime root held locked for this process's life, or who holds it already. */
export type RootLock = { held: true; fd: number } | { held: false; pid: number | null };

/**
 * Takes the runtime root's lock (flock on a descriptor of the directory, kept open and never
 * closed: the lock goes with the process). When another process holds it, says which (from
 * /proc/locks; null where that is not readable, as under ProcSubset=pid).
 */
export function lockRuntimeRoot(path: string, procRoot = '/proc'): RootLock {
  const fd = libc.openat(libc.AT_FDCWD, path, libc.O_RDONLY | libc.O_DIRECTORY);
  if (libc.tryLockExclusive(fd)) return { held: true, fd };
  let pid: number | null = null;
  try {
    const st = libc.fstat(fd);
    const { major, minor } = libc.devParts(st.dev);
    pid = flockHolder(readFileSync(`${procRoot}/locks`, 'utf8'), major, minor, st.ino);
  } catch {
    // not readable here: the PID stays unknown
  }
  libc.close(fd);
  return { held: false, pid };
}
