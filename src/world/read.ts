// Reads a UID's rundir as it is now. Read-only. Everything below the runtime root is read
// through descriptors: each directory opened as a path only (O_PATH|O_NOFOLLOW, which no
// filesystem sees), each entry statx'ed from the kernel's own copy (AT_STATX_DONT_SYNC), so
// that neither a planted symlink nor a FUSE server a user mounted (even one the mount table has
// not shown yet) is ever followed or asked anything.
import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import * as libc from '../sys/libc.js';
import type { FileStat } from '../sys/libc.js';
import { parseMountInfo, topMounts, type Mount } from './mountinfo.js';
import { kindOfMode, type MountRef, type NodeStat, type RundirActual } from './types.js';

export function toNodeStat(st: FileStat): NodeStat {
  return { kind: kindOfMode(st.mode), uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, ino: st.ino, dev: st.dev, btime: st.birthtimeMs };
}

/** statx of an entry of an open directory, or null where nothing is (or something on the way is no directory). */
export function statAt(dirfd: number, name: string): FileStat | null {
  try {
    return libc.statxAt(dirfd, name);
  } catch (e) {
    const c = (e as libc.SysError).code;
    if (c === 'ENOENT' || c === 'ENOTDIR') return null;
    throw e;
  }
}

/** A directory (or anything) opened as a path only: nothing reaches its filesystem. Null where nothing is. */
function openPathAt(dirfd: number, name: string): number | null {
  try {
    return libc.openat(dirfd, name, libc.O_PATH | libc.O_NOFOLLOW);
  } catch (e) {
    const c = (e as libc.SysError).code;
    if (c === 'ENOENT' || c === 'ENOTDIR') return null;
    throw e;
  }
}

const closeQuietly = (fd: number) => {
  try {
    libc.close(fd);
  } catch {
    // closed already
  }
};

/** The mount table, read once per reconcile pass: mount point → the mount on top there. */
export interface MountSnapshot {
  top: Map<string, Mount>;
  errors: string[];
}

export function readMounts(mountinfoPath: string): MountSnapshot {
  const t = parseMountInfo(readFileSync(mountinfoPath, 'utf8'));
  return { top: topMounts(t), errors: t.errors };
}

export function mountAt(m: MountSnapshot, path: string): MountRef | null {
  const top = m.top.get(path);
  return top ? { id: top.id, fsType: top.fsType } : null;
}

/**
 * What stands for an entry on which a filesystem that could block is mounted (FUSE, network;
 * the mount table says so): never lstat'ed, because a FUSE server a user mounted there need
 * never answer, and one blocked lstat would stop the daemon for everyone. tmpfs is entered.
 */
export const MOUNT_POINT: NodeStat = { kind: 'mount', uid: -1, gid: -1, mode: 0, ino: -1, dev: -1 };

/** Filesystems whose calls never wait on anyone: a mount of one below a rundir is entered. */
const LOCAL_FS = new Set(['tmpfs', 'ramfs']);

/** Whether `path` is a mount point of a filesystem that could block (FUSE, network, …). */
export function blockingMountAt(mounts: MountSnapshot, path: string): boolean {
  const m = mounts.top.get(path);
  return m !== undefined && !LOCAL_FS.has(m.fsType);
}

/**
 * Whether an entry statx found to be a mount's root is the mount the table has at `path`: the
 * same mount (by its id, Linux ≥ 5.8) on a filesystem that never blocks. 'unknown' where the
 * table has no such mount yet (it was read before the mount was made): the caller reads the
 * table again, and then takes an unknown mount as one that could block.
 */
export function judgeMountRoot(mounts: MountSnapshot, path: string, st: FileStat): 'local' | 'blocking' | 'unknown' {
  const m = mounts.top.get(path);
  if (!m || (st.mntId !== null && m.id !== st.mntId)) return 'unknown';
  return LOCAL_FS.has(m.fsType) ? 'local' : 'blocking';
}

/** Whether a path strictly below `rundir` is, or is under, a mount point that could block. */
export function underMount(mounts: MountSnapshot, rundir: string, rel: string): boolean {
  if (rel === '' || mounts.top.size === 0) return false;
  const parts = rel.split('/');
  for (let i = 1; i <= parts.length; i++) if (blockingMountAt(mounts, `${rundir}/${parts.slice(0, i).join('/')}`)) return true;
  return false;
}

/** What a walk that would not go on says: a symlink or a mount that could block on the way. */
export const UNKNOWN = Symbol('unknown');

/**
 * lstat of an absolute path below the runtime root that a user named (a process's
 * XDG_RUNTIME_DIR, a socket `rundirctl wait` waits for), one component at a time from the
 * runtime root down through O_PATH descriptors: never through a symlink, never into a mount
 * that could block (or that the table does not know), never out of the runtime root. UNKNOWN
 * where the walk stops; null where something on the way is missing or not a directory.
 */
export function lstatBelowRoot(mounts: MountSnapshot, runtimeRoot: string, path: string): NodeStat | null | typeof UNKNOWN {
  const norm = posix.normalize(path);
  if (!norm.startsWith(runtimeRoot + '/')) return UNKNOWN;
  const parts = norm.slice(runtimeRoot.length + 1).split('/').filter(Boolean);
  if (parts.length === 0) return UNKNOWN;
  let fd: number;
  try {
    fd = libc.openat(libc.AT_FDCWD, runtimeRoot, libc.O_PATH | libc.O_DIRECTORY);
  } catch {
    return null;
  }
  try {
    let at = runtimeRoot;
    for (let i = 0; i < parts.length; i++) {
      at += '/' + parts[i];
      if (blockingMountAt(mounts, at)) return UNKNOWN;
      const st = statAt(fd, parts[i]!);
      if (st === null) return null;
      if (st.mountRoot && judgeMountRoot(mounts, at, st) !== 'local') return UNKNOWN;
      if (i === parts.length - 1) return toNodeStat(st);
      if (!st.isDirectory()) return st.isSymbolicLink() ? UNKNOWN : null;
      const next = openPathAt(fd, parts[i]!);
      if (next === null) return null;
      // What was opened must be what was judged (a mount made in between is another inode).
      const again = libc.fstat(next);
      libc.close(fd);
      fd = next;
      if (again.ino !== st.ino || again.dev !== st.dev || !again.isDirectory()) return UNKNOWN;
    }
    return UNKNOWN;
  } finally {
    closeQuietly(fd);
  }
}

/** A directory that holds more entries than the limit: not listed further (issue 13). */
export const OVERFULL = Symbol('overfull');

/**
 * The names in a directory held as a path (O_PATH), reading at most `limit` of them: null when
 * it cannot be read, OVERFULL when it holds more. A user can put a million files in their
 * rundir; reading them all on every event would stall every other user (60,000 took 4.6 s a
 * pass). It is opened as "." of that descriptor, which crosses no mount made since.
 */
export function listAt(pathFd: number, limit: number): string[] | null | typeof OVERFULL {
  let fd: number;
  try {
    fd = libc.openat(pathFd, '.', libc.O_RDONLY | libc.O_DIRECTORY | libc.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const names = libc.readdirNames(fd, limit);
    return names.length > limit ? OVERFULL : names;
  } catch {
    return null;
  } finally {
    libc.close(fd);
  }
}

/** The type of the filesystem `path` is on, as the mount table says (its nearest mount point). */
export function fsTypeAt(mounts: MountSnapshot, path: string): string | null {
  for (let p = path; ; p = p.slice(0, Math.max(1, p.lastIndexOf('/')))) {
    const m = mounts.top.get(p);
    if (m) return m.fsType;
    if (p === '/') return null;
  }
}

/**
 * An entry as the planner sees it: its statx, or MOUNT_POINT for a mount's root that is not a
 * local filesystem the table knows; `unknown` is set when the table has not seen that mount.
 */
function entryAt(dirfd: number, name: string, mounts: MountSnapshot, path: string, unknown: { seen: boolean }): NodeStat | null {
  const st = statAt(dirfd, name);
  if (st === null) return null;
  if (!st.mountRoot) return toNodeStat(st);
  const j = judgeMountRoot(mounts, path, st);
  if (j === 'unknown') unknown.seen = true;
  return j === 'local' ? { ...toNodeStat(st), mountRoot: true } : MOUNT_POINT;
}

/**
 * The rundir of `uid` as `walker` holds it (null: no runtime root), and the entries the planner
 * asked about. A mount the table does not know yet (on the rundir or on an entry) is never
 * entered: `unknownMount` asks the caller to read the table again and call once more with
 * `final`, which then takes such a mount as one that could block.
 */
export function readRundir(walker: RundirWalker | null, runtimeRoot: string, uid: number, names: readonly string[], mounts: MountSnapshot, maxEntries: number, final = true): RundirActual {
  const path = join(runtimeRoot, String(uid));
  const none: RundirActual = { uid, path, node: null, mount: null, entries: new Map() };
  // The user owns their rundir, so fusermount lets them mount over it: a FUSE server that never
  // answers would hang the first lstat, and the daemon with it, for every user. Not entered.
  if (blockingMountAt(mounts, path)) return { uid, path, node: MOUNT_POINT, mount: mountAt(mounts, path), entries: new Map() };
  const held = walker?.rundir() ?? null;
  if (held === null) return none;
  const { fd: pfd, st } = held;
  const node = toNodeStat(st);
  if (st.mountRoot) {
    const j = judgeMountRoot(mounts, path, st);
    if (j === 'unknown' && !final) return { uid, path, node, mount: null, entries: new Map(), unknownMount: true };
    if (j !== 'local') return { uid, path, node: MOUNT_POINT, mount: mountAt(mounts, path), entries: new Map() };
  }
  const entries = new Map<string, NodeStat | null>();
  const unknown = { seen: false };
  if (node.kind === 'dir') {
    // One listing (kept by the walker for the link reader), then statx only what is there: a
    // fresh rundir costs one call, not one per name. Unreadable or over the entry limit: statx
    // each name, which says what is there.
    const listed = walker!.list('', maxEntries);
    const present = Array.isArray(listed) ? new Set(listed) : null;
    for (const n of names) entries.set(n, present && !present.has(n) ? null : blockingMountAt(mounts, join(path, n)) ? MOUNT_POINT : entryAt(pfd, n, mounts, join(path, n), unknown));
  }
  if (unknown.seen && !final) return { uid, path, node, mount: null, entries, unknownMount: true };
  return { uid, path, node, mount: node.kind === 'dir' ? mountAt(mounts, path) : null, entries };
}

/** A directory held as a path (O_PATH), with what statx said of it. */
export interface HeldDir {
  fd: number;
  st: FileStat;
}

/**
 * A rundir's directories as O_PATH descriptors, opened on first use and kept until `close()`:
 * each component from the rundir down, never a symlink, never a mount's root but the ones
 * `mountRoots` names by their identity (a read judged them local: a private dir on a tmpfs of
 * its own). With `expect`, the rundir is held only while it is still that directory; without,
 * whatever is at its name is held as it is (a sync's read judges it). Listings are kept too,
 * so that a sync lists a directory once.
 */
export class RundirWalker {
  private readonly held = new Map<string, HeldDir | null>();
  private readonly listings = new Map<string, string[] | null | typeof OVERFULL>();
  private top: HeldDir | null = null;
  constructor(
    rootFd: number,
    uid: number,
    expect?: { ino: number; dev: number },
    private readonly mountRoots: (rel: string) => { ino: number; dev: number } | undefined = () => undefined,
  ) {
    const fd = openPathAt(rootFd, String(uid));
    if (fd === null) return;
    const st = libc.fstat(fd);
    if (expect && (st.ino !== expect.ino || st.dev !== expect.dev)) {
      libc.close(fd);
      return;
    }
    this.top = { fd, st };
    this.held.set('', st.isDirectory() ? this.top : null);
  }

  /** What is at the rundir's name (any kind), held as a path; null where nothing is. */
  rundir(): HeldDir | null {
    return this.top;
  }

  /** The names in the directory at `rel`, at most `limit` (OVERFULL past it), listed once. */
  list(rel: string, limit: number): string[] | null | typeof OVERFULL {
    if (this.listings.has(rel)) return this.listings.get(rel)!;
    const fd = this.dir(rel);
    const l = fd === null ? null : listAt(fd, limit);
    this.listings.set(rel, l);
    return l;
  }

  /** The directory at `rel` ('' the rundir), or null where it is not one to read. */
  dir(rel: string): number | null {
    return this.at(rel)?.fd ?? null;
  }

  /** The directory at `rel` with its statx, or null. */
  at(rel: string): HeldDir | null {
    const hit = this.held.get(rel);
    if (hit !== undefined) return hit;
    let out: HeldDir | null = null;
    const slash = rel.lastIndexOf('/');
    const parent = rel === '' ? null : this.dir(slash < 0 ? '' : rel.slice(0, slash));
    if (parent !== null) {
      const fd = openPathAt(parent, slash < 0 ? rel : rel.slice(slash + 1));
      if (fd !== null) {
        // What was opened is judged, not what a path named a moment before.
        const st = libc.fstat(fd);
        const allowed = this.mountRoots(rel);
        const enter = st.isDirectory() && (!st.mountRoot || (allowed !== undefined && allowed.ino === st.ino && allowed.dev === st.dev));
        if (enter) out = { fd, st };
        else libc.close(fd);
      }
    }
    this.held.set(rel, out);
    return out;
  }

  close(): void {
    for (const h of this.held.values()) if (h !== null && h !== this.top) closeQuietly(h.fd);
    if (this.top) closeQuietly(this.top.fd);
    this.held.clear();
    this.listings.clear();
  }
}
