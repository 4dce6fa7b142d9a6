// Reads a UID's rundir as it is now. Read-only; lstat never follows a planted link.
import { lstatSync, readFileSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { parseMountInfo, topMounts, type Mount } from './mountinfo.js';
import { kindOfMode, type MountRef, type NodeStat, type RundirActual } from './types.js';

export function toNodeStat(st: Stats): NodeStat {
  return { kind: kindOfMode(st.mode), uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, ino: st.ino, dev: st.dev };
}

export function lstatOrNull(path: string): NodeStat | null {
  try {
    // No exception for a missing entry: building one costs ten times the lstat itself.
    const st = lstatSync(path, { throwIfNoEntry: false });
    return st ? toNodeStat(st) : null;
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'ENOENT' || c === 'ENOTDIR') return null;
    throw e;
  }
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

export function readRundir(runtimeRoot: string, uid: number, names: readonly string[], mounts: MountSnapshot): RundirActual {
  const path = join(runtimeRoot, String(uid));
  const node = lstatOrNull(path);
  const entries = new Map<string, NodeStat | null>();
  if (node?.kind === 'dir') {
    // One readdir, then lstat only what is there: a fresh rundir costs one call, not one per name.
    let present: Set<string> | null = null;
    try {
      present = new Set(readdirSync(path));
    } catch {
      // unreadable or gone meanwhile: lstat each name, which says what is there
    }
    for (const n of names) entries.set(n, present && !present.has(n) ? null : lstatOrNull(join(path, n)));
  }
  return { uid, path, node, mount: node?.kind === 'dir' ? mountAt(mounts, path) : null, entries };
}
