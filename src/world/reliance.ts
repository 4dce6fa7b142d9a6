// Who relies on which rundir: processes grouped by (rundir UID, unit). A unit is the cause a
// person can act on, and one record per unit keeps a thousand processes to one line. Pure.
import type { ProcRecord } from './procfs.js';
import { rundirUidOf } from './procfs.js';

export type Via = 'env' | 'cwd' | 'file' | 'socket';

export interface Reliant {
  /** The UID whose rundir is relied on (from the path, not the process's own UID). */
  uid: number;
  /** The systemd unit, or null for a process outside any (then `label` names it by PID). */
  unit: string | null;
  /** Stable for the unit (or the PID): what warnings are keyed on. */
  key: string;
  label: string;
  pids: number[];
  /** The lowest PID: OBJECT_PID in the journal. */
  mainPid: number;
  comm: string;
  /** The UIDs the processes run as. */
  runAs: number[];
  snapInstance: string | null;
  /** Inside a login session of `uid` (its session scope or its user manager): logind keeps the rundir for it. */
  inSession: boolean;
  via: Via[];
  xdgRuntimeDirs: string[];
  sockets: string[];
  files: string[];
  /** Files it holds open that have been deleted. */
  deleted: string[];
}

const MAX_ITEMS = 32;

function add<T>(list: T[], x: T): void {
  if (list.length < MAX_ITEMS && !list.includes(x)) list.push(x);
}

export function groupReliants(runtimeRoot: string, procs: ProcRecord[]): Reliant[] {
  const out = new Map<string, Reliant>();
  for (const p of procs) {
    const touches = new Map<number, { via: Via; path: string; deleted?: boolean; listening?: boolean }[]>();
    const note = (path: string, via: Via, deleted?: boolean) => {
      const uid = rundirUidOf(runtimeRoot, path);
      if (uid === null) return;
      const l = touches.get(uid) ?? [];
      l.push({ via, path, deleted });
      touches.set(uid, l);
    };
    if (p.xdgRuntimeDir) note(p.xdgRuntimeDir, 'env');
    if (p.cwd) note(p.cwd, 'cwd');
    for (const f of p.files) note(f.path, 'file', f.deleted);
    for (const s of p.sockets) note(s.path, 'socket');
    for (const [uid, items] of touches) {
      const unit = p.cgroup?.unit ?? null;
      const key = `${uid}\0${unit ?? `pid:${p.pid}`}`;
      let r = out.get(key);
      if (!r) {
        // In a session of that UID, its user manager, or logind's own helper that makes and
        // purges the rundir (user-runtime-dir@UID holds it open while it removes it): not a
        // service that relies on the rundir from outside.
        const inSession = p.cgroup !== null && (p.cgroup.session?.uid === uid || p.cgroup.userManagerUid === uid || unit === `user-runtime-dir@${uid}.service`);
        r = { uid, unit, key: unit ?? (p.label ? `socket:${p.sockets[0]?.path}` : `pid:${p.pid}`), label: unit ?? p.label ?? `${p.comm}[${p.pid}]`, pids: [], mainPid: p.pid, comm: p.comm, runAs: [], snapInstance: p.snapInstance, inSession, via: [], xdgRuntimeDirs: [], sockets: [], files: [], deleted: [] };
        out.set(key, r);
      }
      r.pids.push(p.pid);
      if (p.pid < r.mainPid) {
        r.mainPid = p.pid;
        r.comm = p.comm;
      }
      add(r.runAs, p.uids[0]!);
      r.snapInstance ??= p.snapInstance;
      for (const it of items) {
        add(r.via, it.via);
        if (it.via === 'env') add(r.xdgRuntimeDirs, it.path);
        else if (it.via === 'socket') add(r.sockets, it.path);
        else if (it.deleted) add(r.deleted, it.path);
        else add(r.files, it.path);
      }
    }
  }
  return [...out.values()].sort((a, b) => a.uid - b.uid || a.label.localeCompare(b.label));
}
