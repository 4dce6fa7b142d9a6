// V8's code cache for the daemon's own bundle, kept in the cache directory systemd gives the
// service (CacheDirectory=, $CACHE_DIRECTORY). What is in it is run as root: it is read only
// from a regular file owned by this user, in a directory owned by this user that nobody else
// can write, both checked through descriptors (a directory swapped after its check is not the
// one read from); it is written there only by rename of a new 0600 file. V8 checks the rest:
// a cache made by another Node, with other flags or for another source is rejected by it.
import * as fs from 'node:fs';
import { at, close, readRegularFile, replaceFileAt, withFd } from './safefs.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

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
    close(fd);
    throw new Error(why);
  }
  return fd;
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
    const data = readRegularFile(at(dfd, CODE_CACHE_FILE), CODE_CACHE_MAX_BYTES, (st) => trusted(st, euid));
    return data === null ? { state: 'absent' } : { state: 'found', data };
  } catch (e) {
    return failed(e, CODE_CACHE_FILE);
  } finally {
    close(dfd);
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
  withFd(openCacheDir(dir, euid), (dfd) => replaceFileAt(dfd, CODE_CACHE_FILE, data));
}

