// Reads a UID's rundir as it is now. Read-only; lstat never follows a planted link.
import { lstatSync, opendirSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { join, posix } from 'node:path';
import { parseMountInfo, topMounts, type Mount } from './mountinfo.js';
import { kindOfMode, type MountRef, type NodeStat, type RundirActual } from './types.js';

export function toNodeStat(st: Stats): NodeStat {
  return { kind: kindOfMode(st.mode), uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, ino: st.ino, dev: st.dev, btime: st.birthtimeMs };
}

/** lstat, or null where nothing is (or a component on the way is no directory). */
function lstatStats(path: string): Stats | null {
  try {
    // No exception for a missing entry: building one costs ten times the lstat itself.
    return lstatSync(path, { throwIfNoEntry: false }) ?? null;
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'ENOENT' || c === 'ENOTDIR') return null;
    throw e;
  }
}

export function lstatOrNull(path: string): NodeStat | null {
  const st = lstatStats(path);
  return st ? toNodeStat(st) : null;
}

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
 * rundir down: never through a symlink (lstat of a deeper path would follow it, to a FUSE
 * mount anywhere), never into a mount that could block. UNKNOWN where the walk stops; null
 * where something on the way is missing or not a directory.
 */
export function lstatBelowRoot(mounts: MountSnapshot, runtimeRoot: string, path: string): NodeStat | null | typeof UNKNOWN {
  const norm = posix.normalize(path);
  if (!norm.startsWith(runtimeRoot + '/')) return UNKNOWN;
  const parts = norm.slice(runtimeRoot.length + 1).split('/').filter(Boolean);
  let at = runtimeRoot;
  let st: NodeStat | null = null;
  for (let i = 0; i < parts.length; i++) {
    at += '/' + parts[i];
    if (blockingMountAt(mounts, at)) return UNKNOWN;
    st = lstatOrNull(at);
    if (st === null) return null;
    if (i < parts.length - 1 && st.kind !== 'dir') return st.kind === 'symlink' ? UNKNOWN : null;
  }
  return parts.length === 0 ? UNKNOWN : st;
}

/** A directory that holds more entries than the limit: not listed further (issue 13). */
export const OVERFULL = Symbol('overfull');

/**
 * The names in a directory, reading at most `limit` of them: null when it cannot be read,
 * OVERFULL when it holds more. A user can put a million files in their rundir; reading them
 * all on every event would stall every other user (60,000 took 4.6 s a pass).
 */
export function listBounded(path: string, limit: number): string[] | null | typeof OVERFULL {
  let dir;
  try {
    dir = opendirSync(path, { bufferSize: 128 });
  } catch {
    return null;
  }
  try {
    const names: string[] = [];
    for (let e = dir.readSync(); e !== null; e = dir.readSync()) {
      if (names.length === limit) return OVERFULL;
      names.push(e.name);
    }
    return names;
  } catch {
    return null;
  } finally {
    dir.closeSync();
  }
}

/** tmpfs gives a directory a size of 20 bytes per entry, "." and ".." included (BOGO_DIRENT_SIZE). */
const TMPFS_DIRENT_BYTES = 20;

/** The type of the filesystem `path` is on, as the mount table says (its nearest mount point). */
export function fsTypeAt(mounts: MountSnapshot, path: string): string | null {
  for (let p = path; ; p = p.slice(0, Math.max(1, p.lastIndexOf('/')))) {
    const m = mounts.top.get(p);
    if (m) return m.fsType;
    if (p === '/') return null;
  }
}

/**
 * The names in a rundir, as listBounded says. On tmpfs the directory's size counts its
 * entries, so one that holds no more than the limit is read in one readdir (a Dir object costs
 * ~25 µs to make, more than the read); a few more may arrive between the two calls, and a
 * list over the limit is still OVERFULL.
 */
export function listRundir(path: string, st: Stats, tmpfs: boolean, limit: number): string[] | null | typeof OVERFULL {
  if (!tmpfs || st.size / TMPFS_DIRENT_BYTES - 2 > limit) return listBounded(path, limit);
  let names: string[];
  try {
    names = readdirSync(path);
  } catch {
    return null;
  }
  return names.length > limit ? OVERFULL : names;
}

export function readRundir(runtimeRoot: string, uid: number, names: readonly string[], mounts: MountSnapshot, maxEntries: number): RundirActual {
  const path = join(runtimeRoot, String(uid));
  // The user owns their rundir, so fusermount lets them mount over it: a FUSE server that never
  // answers would hang the first lstat, and the daemon with it, for every user. Not entered.
  if (blockingMountAt(mounts, path)) return { uid, path, node: MOUNT_POINT, mount: mountAt(mounts, path), entries: new Map() };
  const st = lstatStats(path);
  const node = st ? toNodeStat(st) : null;
  const entries = new Map<string, NodeStat | null>();
  if (st && node?.kind === 'dir') {
    // One readdir, then lstat only what is there: a fresh rundir costs one call, not one per name.
    // Unreadable, gone meanwhile or over the entry limit: lstat each name, which says what is there.
    const listed = listRundir(path, st, fsTypeAt(mounts, path) === 'tmpfs', maxEntries);
    const present = Array.isArray(listed) ? new Set(listed) : null;
    for (const n of names) entries.set(n, present && !present.has(n) ? null : blockingMountAt(mounts, join(path, n)) ? MOUNT_POINT : lstatOrNull(join(path, n)));
  }
  return { uid, path, node, mount: node?.kind === 'dir' ? mountAt(mounts, path) : null, entries };
}
