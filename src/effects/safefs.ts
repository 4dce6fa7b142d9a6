// Descriptor-relative filesystem operations. Node has no openat/mkdirat, but a path through
// /proc/self/fd/N resolves from the open directory itself (a "magic link", not a re-walk of
// its path), so `/proc/self/fd/N/name` is exactly openat(N, "name"). Only the last component
// is ever a name from a user-controlled directory, and it is opened with O_NOFOLLOW.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK;

/**
 * The descriptors' directory: /proc/PID/fd where /proc is this process's own (its `self` link
 * names this pid; in another pid namespace's /proc that PID would be someone else), which
 * spares every call the lookup of `self` (~0.8 of ~8 µs a mkdir); else /proc/self/fd.
 */
const FD_DIR = ((): string => {
  try {
    if (fs.readlinkSync('/proc/self') === String(process.pid)) return `/proc/${process.pid}/fd`;
  } catch {
    // no /proc/self link to compare: the safe spelling
  }
  return '/proc/self/fd';
})();

/** The path that names an open descriptor (its magic link). */
export const fdPath = (fd: number): string => `${FD_DIR}/${fd}`;

export function at(dirfd: number, name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/')) {
    throw Object.assign(new Error(`refusing entry name ${JSON.stringify(name)}`), { code: 'EINVAL' });
  }
  return `${FD_DIR}/${dirfd}/${name}`;
}

/** Opens a trusted, configured directory (the runtime root). */
export function openTrustedDir(path: string): number {
  return fs.openSync(path, O_RDONLY | O_DIRECTORY);
}

/** openat(dirfd, name, O_DIRECTORY|O_NOFOLLOW): ELOOP for a symlink, ENOTDIR for anything else. */
export function openDirAt(dirfd: number, name: string): number {
  return fs.openSync(at(dirfd, name), DIR_FLAGS);
}

export function mkdirAt(dirfd: number, name: string, mode: number): void {
  fs.mkdirSync(at(dirfd, name), { mode });
}

/** rmdir of an empty directory; never recursive. */
export function rmdirAt(dirfd: number, name: string): void {
  fs.rmdirSync(at(dirfd, name));
}

export function lstatAt(dirfd: number, name: string): fs.Stats | null {
  return fs.lstatSync(at(dirfd, name), { throwIfNoEntry: false }) ?? null;
}

/** An unguessable entry name: a user who can list the directory still cannot plant it first. */
export function tempName(prefix: string): string {
  return prefix + randomBytes(8).toString('hex');
}

/**
 * A regular file's bytes, opened O_NOFOLLOW|O_NONBLOCK (a FIFO at the path cannot hang the read);
 * null when there is none. Throws for a symlink (ELOOP), anything but a regular file, a file over
 * `maxBytes`, or one `refuse` gives a reason against (from its fstat, before anything is read).
 */
export function readRegularFile(path: string, maxBytes: number, refuse?: (st: fs.Stats) => string | null): Buffer | null {
  let fd: number;
  try {
    fd = fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    const why = !st.isFile() ? 'not a regular file' : st.size > maxBytes ? `larger than ${maxBytes} bytes` : (refuse?.(st) ?? null);
    if (why) throw new Error(why);
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Replaces `name` in an open directory with a file holding `data`, whole: written under an
 * unguessable name (O_EXCL|O_NOFOLLOW, 0600), then renamed over it, so that a reader or a crash
 * never sees half a file and a link planted at the name is replaced, never followed.
 */
export function replaceFileAt(dirfd: number, name: string, data: string | Uint8Array): void {
  const tmp = tempName(`.${name}.`);
  const fd = fs.openSync(at(dirfd, tmp), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW, 0o600);
  try {
    fs.writeFileSync(fd, data);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(at(dirfd, tmp), at(dirfd, name));
}

/** The filesystem a directory descriptor is on, as far as the proof of a new directory needs. */
export interface DirFs {
  dev: number;
  /** tmpfs: an empty directory has size 40 (two bogus 20-byte entries), so fstat proves emptiness. */
  tmpfs: boolean;
}

const TMPFS_MAGIC = 0x01021994;

export function dirFs(dirfd: number): DirFs {
  const st = fs.fstatSync(dirfd);
  let tmpfs = false;
  try {
    tmpfs = fs.statfsSync(fdPath(dirfd)).type === TMPFS_MAGIC;
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
 * here; the caller then leaves it untouched. Returns the open descriptor of the new directory.
 */
export function mkdirProven(dirfd: number, name: string, mode: number, selfUid: number, parent: DirFs): { fd: number; st: fs.Stats } {
  mkdirAt(dirfd, name, mode);
  const fd = openDirAt(dirfd, name);
  try {
    const st = fs.fstatSync(fd);
    const empty = parent.tmpfs ? st.size === 40 : fs.readdirSync(fdPath(fd)).length === 0;
    if (!st.isDirectory() || st.uid !== selfUid || st.dev !== parent.dev || st.nlink !== 2 || !empty) {
      throw Object.assign(new Error(`${name} was replaced right after mkdir (uid ${st.uid}, ${st.nlink} links); left untouched`), { code: 'ESWAPPED' });
    }
    return { fd, st };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

export const fstat = (fd: number): fs.Stats => fs.fstatSync(fd);
export const fchown = (fd: number, uid: number, gid: number): void => fs.fchownSync(fd, uid, gid);
export const fchmod = (fd: number, mode: number): void => fs.fchmodSync(fd, mode);
export const close = (fd: number): void => fs.closeSync(fd);

/** Runs fn with an open descriptor and always closes it. */
export function withFd<T>(fd: number, fn: (fd: number) => T): T {
  try {
    return fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}
