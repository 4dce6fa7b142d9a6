// V8's code cache for the daemon's own bundle, kept in the cache directory systemd gives the
// service (CacheDirectory=, $CACHE_DIRECTORY). What is in it is run as root: it is read only
// from a regular file owned by this user, in a directory owned by this user that nobody else
// can write, both checked through descriptors (a directory swapped after its check is not the
// one read from); it is written there only by rename of a new 0600 file. V8 checks the rest:
// a cache made by another Node, with other flags or for another source is rejected by it.
// Node's own fs alone: the executable's loader reads it before the daemon (and libc's module,
// src/sys/libc.ts) is loaded, and the directory is root's (CacheDirectory=), outside any rundir.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_WRONLY, O_CREAT, O_EXCL } = fs.constants;

export const CODE_CACHE_FILE = 'rundird.code-cache';
/** The bundle's cache is ~0.5 MiB; anything much larger is not one of ours. */
export const CODE_CACHE_MAX_BYTES = 32 * 1024 * 1024;

export type CodeCacheRead = { state: 'absent' } | { state: 'found'; data: Buffer } | { state: 'refused'; why: string };

/** Who may have written a file that is run as this process: this user alone. */
function trusted(st: fs.Stats, euid: number): string | null {
  if (st.uid !== euid) return `owned by uid ${st.uid}`;
  if ((st.mode & 0o022) !== 0) return `writable by others (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
  return null;
}

/** The cache directory, open and checked; throws with the reason it is not to be trusted (errno-less). */
function openCacheDir(dir: string, euid: number): number {
  const fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK);
  const why = trusted(fs.fstatSync(fd), euid);
  if (why) {
    fs.closeSync(fd);
    throw new Error(why);
  }
  return fd;
}

/** Whether `dir` still names the directory held open as `dfd` (not swapped since its check). */
function stillThere(dir: string, dfd: number): boolean {
  const held = fs.fstatSync(dfd);
  const now = fs.lstatSync(dir, { throwIfNoEntry: false });
  return now !== undefined && now.ino === held.ino && now.dev === held.dev;
}

/** The cache file's bytes, from the checked directory: a regular file of this user's, bounded, never through a link. */
function readFileIn(dir: string, dfd: number, euid: number): Buffer | null {
  let fd: number;
  try {
    fd = fs.openSync(join(dir, CODE_CACHE_FILE), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    const why = !st.isFile() ? 'not a regular file' : st.size > CODE_CACHE_MAX_BYTES ? `larger than ${CODE_CACHE_MAX_BYTES} bytes` : trusted(st, euid);
    if (why) throw new Error(why);
    if (!stillThere(dir, dfd)) throw new Error('in a directory swapped since it was checked');
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** What is at the cache's path; never throws: without a cache rundird only starts slower. */
export function readCodeCache(dir: string, euid: number): CodeCacheRead {
  try {
    return readChecked(dir, euid);
  } catch (e) {
    return { state: 'refused', why: (e as Error).message };
  }
}

function readChecked(dir: string, euid: number): CodeCacheRead {
  let dfd: number;
  try {
    dfd = openCacheDir(dir, euid);
  } catch (e) {
    return failed(e, dir);
  }
  try {
    const data = readFileIn(dir, dfd, euid);
    return data === null ? { state: 'absent' } : { state: 'found', data };
  } catch (e) {
    return failed(e, CODE_CACHE_FILE);
  } finally {
    fs.closeSync(dfd);
  }
}

/** Why `what` (the directory or the file) is not read: absent, a symlink, or as the error says. */
function failed(e: unknown, what: string): CodeCacheRead {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return { state: 'absent' };
  if (err.code === 'ELOOP') return { state: 'refused', why: `${what} is a symbolic link` };
  // Errors without an errno are ours: the reason the file or directory is not trusted.
  return { state: 'refused', why: err.code ? `${what}: ${err.message}` : `${what} is ${err.message}` };
}

/** Writes the cache whole under a new name and renames it over the old one. Throws on failure. */
export function writeCodeCache(dir: string, euid: number, data: Buffer): void {
  const dfd = openCacheDir(dir, euid);
  try {
    const tmp = join(dir, `.${CODE_CACHE_FILE}.${randomBytes(8).toString('hex')}`);
    const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      fs.writeFileSync(fd, data);
    } finally {
      fs.closeSync(fd);
    }
    if (!stillThere(dir, dfd)) throw new Error(`${dir} was swapped since it was checked`);
    fs.renameSync(tmp, join(dir, CODE_CACHE_FILE));
  } finally {
    fs.closeSync(dfd);
  }
}

