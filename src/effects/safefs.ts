// Descriptor-relative filesystem operations on libc's *at() calls (src/sys/libc.ts): every name
// is one component looked up in a directory held open, never a path walked again, and never a
// path through /proc (which may be mounted hidepid= or subset=pid, or not at all). A directory a
// user controls is entered only after the kernel, not the filesystem, has said what it is
// (`openDirAt`): a FUSE server mounted there is never asked anything.
import { readSync, writeSync } from 'node:fs';
import * as libc from '../sys/libc.js';
import { FileStat } from '../sys/libc.js';
import { randomHex } from '../reconcile/ownTemps.js';

export { FileStat };

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_PATH, O_WRONLY, O_CREAT, O_EXCL } = libc;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK;

const fault = (code: string, message: string) => Object.assign(new Error(message), { code });

/** Opens a trusted, configured directory (the runtime root, the records' directory). */
export function openTrustedDir(path: string): number {
  return libc.openat(libc.AT_FDCWD, path, O_RDONLY | O_DIRECTORY);
}

/** The identity a directory is expected to have (what a read found there). */
export interface Expect {
  ino: number;
  dev: number;
}

/**
 * Opens a directory that a user controls, without ever asking its filesystem: `name` is first
 * opened as a path only (O_PATH|O_NOFOLLOW: no open(2) reaches the filesystem) and statx'ed from
 * the kernel's own copy (AT_STATX_DONT_SYNC); only a real directory that is no mount's root, or
 * that is exactly the `expect`ed inode (a rundir on its tmpfs), is then opened, as "." of that
 * very descriptor, which crosses no mount made meanwhile. ELOOP for a symlink, ENOTDIR for
 * anything else, EMOUNT for a mount's root, ESTALE for another inode than expected.
 */
export function openDirAt(dirfd: number, name: string, expect?: Expect): { fd: number; st: FileStat } {
  const pfd = libc.openat(dirfd, libc.checkName(name), O_PATH | O_NOFOLLOW);
  try {
    const st = libc.fstat(pfd);
    if (st.isSymbolicLink()) throw fault('ELOOP', `${name} is a symbolic link; not followed`);
    if (!st.isDirectory()) throw fault('ENOTDIR', `${name} is not a directory`);
    if (expect && (st.ino !== expect.ino || st.dev !== expect.dev)) throw fault('ESTALE', `${name} is another directory than the one read`);
    if (!expect && st.mountRoot) throw fault('EMOUNT', `${name} is a mount point; not entered`);
    return { fd: libc.openat(pfd, '.', DIR_FLAGS), st };
  } finally {
    libc.close(pfd);
  }
}

export function mkdirAt(dirfd: number, name: string, mode: number): void {
  libc.mkdirat(dirfd, name, mode);
}

/** rmdir of an empty directory; never recursive. */
export function rmdirAt(dirfd: number, name: string): void {
  libc.unlinkat(dirfd, name, libc.AT_REMOVEDIR);
}

export function unlinkAt(dirfd: number, name: string): void {
  libc.unlinkat(dirfd, name);
}

/** A hard link; fails with EEXIST where anything is (nothing is replaced). */
export function linkAt(srcDirFd: number, srcName: string, dstDirFd: number, dstName: string): void {
  libc.linkat(srcDirFd, srcName, dstDirFd, dstName);
}

export function symlinkAt(value: string, dirfd: number, name: string): void {
  libc.symlinkat(value, dirfd, name);
}

/** rename within or between held directories; with `noReplace`, EEXIST rather than replace anything. */
export function renameAt(dirfd: number, from: string, todirfd: number, to: string, noReplace = false): void {
  libc.renameat2(dirfd, from, todirfd, to, noReplace ? libc.RENAME_NOREPLACE : 0);
}

/** statx of an entry (never followed, never asking its filesystem), or null where nothing is. */
export function lstatAt(dirfd: number, name: string): FileStat | null {
  try {
    return libc.statxAt(dirfd, name);
  } catch (e) {
    if ((e as libc.SysError).code === 'ENOENT') return null;
    throw e;
  }
}

/** The names in an open directory, read from its start. */
export function listDir(fd: number): string[] {
  const dup = libc.openat(fd, '.', DIR_FLAGS);
  try {
    return libc.readdirNames(dup);
  } finally {
    libc.close(dup);
  }
}

/** A second descriptor of the same directory (the caller closes both). */
export const reopenDir = (fd: number): number => libc.openat(fd, '.', DIR_FLAGS);

/** An unguessable entry name: a user who can list the directory still cannot plant it first. */
export function tempName(prefix: string): string {
  return prefix + randomHex(8);
}

/**
 * A regular file's bytes, opened O_NOFOLLOW|O_NONBLOCK (a FIFO at the name cannot hang the read);
 * null when there is none. Throws for a symlink (ELOOP), anything but a regular file, a file over
 * `maxBytes`, or one `refuse` gives a reason against (from its fstat, before anything is read).
 */
export function readRegularFileAt(dirfd: number, name: string, maxBytes: number, refuse?: (st: FileStat) => string | null): Buffer | null {
  let fd: number;
  try {
    fd = libc.openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    if ((e as libc.SysError).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const st = libc.fstat(fd);
    const why = !st.isFile() ? 'not a regular file' : st.size > maxBytes ? `larger than ${maxBytes} bytes` : (refuse?.(st) ?? null);
    if (why) throw new Error(why);
    const buf = Buffer.alloc(st.size);
    let n = 0;
    for (let r = 1; r > 0 && n < buf.length; n += r) r = readFd(fd, buf, n);
    return buf.subarray(0, n);
  } finally {
    libc.close(fd);
  }
}

/**
 * Replaces `name` in an open directory with a file holding `data`, whole: written under an
 * unguessable name (O_EXCL|O_NOFOLLOW, 0600), then renamed over it, so that a reader or a crash
 * never sees half a file and a link planted at the name is replaced, never followed. A write
 * that fails takes its temporary file with it.
 */
export function replaceFileAt(dirfd: number, name: string, data: string | Uint8Array): void {
  const tmp = tempName(`.${name}.`);
  const fd = libc.openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    try {
      writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
    } finally {
      libc.close(fd);
    }
    libc.renameat2(dirfd, tmp, dirfd, name);
  } catch (e) {
    try {
      libc.unlinkat(dirfd, tmp);
    } catch {
      // gone already
    }
    throw e;
  }
}

// Node's fs reads and writes any descriptor; only the *at() calls are libc's.
const readFd = (fd: number, buf: Buffer, off: number): number => readSync(fd, buf, off, buf.length - off, null);
function writeAll(fd: number, data: Uint8Array): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
}

/** The filesystem a directory descriptor is on, as far as the proof of a new directory needs. */
export interface DirFs {
  dev: number;
  /** tmpfs: an empty directory has size 40 (two bogus 20-byte entries), so fstat proves emptiness. */
  tmpfs: boolean;
}

const TMPFS_MAGIC = 0x01021994;

/** Of a directory already entered through openDirAt (statfs reaches its filesystem). */
export function dirFs(dirfd: number): DirFs {
  const st = libc.fstat(dirfd);
  let tmpfs = false;
  try {
    tmpfs = libc.fstatfsType(dirfd) === TMPFS_MAGIC;
  } catch {
    // unknown: the slow proof
  }
  return { dev: st.dev, tmpfs };
}

/**
 * mkdirat, then proof that what is at the name now is the directory just made: opened without
 * following, a directory on the parent's device, owned by the daemon, with no entries and no
 * subdirectories (on tmpfs its size says so; elsewhere it is read). A user who renames some
 * other directory into place between the mkdir and the open (a root-owned one, say) is caught
 * here; the caller then leaves it untouched. It is opened directly: a directory root has just
 * made (0700) is no user's to mount a filesystem on, and a mount point cannot be renamed into
 * its place. Returns the open descriptor of the new directory.
 */
export function mkdirProven(dirfd: number, name: string, mode: number, selfUid: number, parent: DirFs): { fd: number; st: FileStat } {
  libc.mkdirat(dirfd, name, mode);
  const fd = libc.openat(dirfd, name, DIR_FLAGS);
  try {
    const st = libc.fstat(fd);
    const empty = parent.tmpfs ? st.size === 40 : listDir(fd).length === 0;
    if (!st.isDirectory() || st.uid !== selfUid || st.dev !== parent.dev || st.nlink !== 2 || !empty) {
      throw fault('ESWAPPED', `${name} was replaced right after mkdir (uid ${st.uid}, ${st.nlink} links); left untouched`);
    }
    return { fd, st };
  } catch (e) {
    libc.close(fd);
    throw e;
  }
}

export const fstat = (fd: number): FileStat => libc.fstat(fd);
export const fchown = (fd: number, uid: number, gid: number): void => libc.fchown(fd, uid, gid);
export const fchmod = (fd: number, mode: number): void => libc.fchmod(fd, mode);
export const close = (fd: number): void => libc.close(fd);

/** Runs fn with an open descriptor and always closes it. */
export function withFd<T>(fd: number, fn: (fd: number) => T): T {
  try {
    return fn(fd);
  } finally {
    libc.close(fd);
  }
}
