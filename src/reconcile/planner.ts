// The pure planner: from what should exist and what does (read afresh), the list of actions.
// No I/O here; every rule of what rundird may touch is decided in this file.
import type { CreatedRecord, NodeStat, RundirActual, RundirStatus } from '../world/types.js';
import { instanceOfPrivateDir, privateDirName } from '../world/instances.js';

export const PRIVATE_DIR_MODE = 0o700;

export interface PlanInput {
  uid: number;
  actual: RundirActual;
  /** Instances that should have a private dir (inventory ∩ config); empty for an unselected UID. */
  wanted: readonly string[];
  /** Instances gone from the inventory but still within the grace period: neither made nor removed. */
  departing: ReadonlySet<string>;
  /** Instances that were installed and are gone for good. */
  removed: ReadonlySet<string>;
  /** Private dirs rundird made in this UID's rundir, by entry name. */
  created: ReadonlyMap<string, CreatedRecord>;
  /** The daemon's own uid (0 in production): a dir it made and could not chown yet is owned by it. */
  selfUid: number;
  /** Make and change nothing now (a tmpfs start is queued over a plain dir, or a purge runs). */
  hold?: boolean;
}

export interface RundirExpect {
  ino: number;
  dev: number;
}

export type Action =
  | { op: 'mkdir'; name: string; instance: string; owner: number; group: number; recreate: boolean }
  | { op: 'fix'; name: string; instance: string; ino: number; dev: number; owner: number; group: number; from: Pick<NodeStat, 'uid' | 'gid' | 'mode'> }
  | { op: 'rmdir'; name: string; instance: string; ino: number; dev: number }
  | { op: 'forget'; name: string };

export type ProblemCode =
  | 'rundir-symlink'
  | 'rundir-not-dir'
  | 'rundir-foreign-owner'
  | 'privdir-symlink'
  | 'privdir-not-dir'
  | 'privdir-foreign-owner'
  | 'privdir-left'
  | 'privdir-write-failed'
  | 'link-source-refused'
  | 'link-target-occupied'
  | 'link-dir-overfull'
  | 'link-parent-refused'
  | 'link-exdev'
  | 'link-failed';

export interface Problem {
  code: ProblemCode;
  name: string | null;
  instance: string | null;
  detail: string;
}

export interface Plan {
  uid: number;
  status: RundirStatus;
  /** The rundir the actions were planned for; effects refuse to act if it changed since. */
  rundir: RundirExpect | null;
  actions: Action[];
  problems: Problem[];
}

export function rundirStatus(a: RundirActual): RundirStatus {
  const n = a.node;
  if (n === null) return 'absent';
  if (n.kind === 'symlink') return 'symlink';
  if (n.kind !== 'dir') return 'not-dir';
  if (n.uid !== a.uid) return n.uid === 0 ? 'root-owned' : 'foreign-owner';
  if (a.mount === null) return 'plain';
  return a.mount.fsType === 'tmpfs' ? 'tmpfs' : 'mounted';
}

/** The entry names the planner needs lstat'ed for this input. */
export function namesToRead(wanted: readonly string[], departing: ReadonlySet<string>, removed: ReadonlySet<string>, created: ReadonlyMap<string, CreatedRecord>): string[] {
  const names = new Set<string>(created.keys());
  for (const i of wanted) names.add(privateDirName(i));
  for (const i of departing) names.add(privateDirName(i));
  for (const i of removed) names.add(privateDirName(i));
  return [...names];
}

function sameNode(r: CreatedRecord, n: NodeStat | null | undefined): boolean {
  return !!n && n.kind === 'dir' && n.ino === r.ino && n.dev === r.dev;
}

const fmtMode = (m: number) => '0' + m.toString(8);

export function plan(input: PlanInput): Plan {
  const { uid, actual, created } = input;
  const status = rundirStatus(actual);
  const out: Plan = { uid, status, rundir: null, actions: [], problems: [] };
  const rundirProblem = (code: ProblemCode, detail: string) => out.problems.push({ code, name: null, instance: null, detail });

  switch (status) {
    case 'absent':
      // Everything rundird made went with the directory.
      for (const name of created.keys()) out.actions.push({ op: 'forget', name });
      return out;
    case 'symlink':
      rundirProblem('rundir-symlink', `${actual.path} is a symbolic link; rundird does not follow it`);
      return out;
    case 'not-dir':
      if (actual.node!.kind === 'mount') rundirProblem('rundir-not-dir', `${actual.path} is a mount of ${actual.mount?.fsType ?? '?'}, a filesystem that could block; not entered`);
      else rundirProblem('rundir-not-dir', `${actual.path} is a ${actual.node!.kind}, not a directory`);
      return out;
    case 'root-owned':
      // Not the user's yet: nothing of the user's belongs in it (and a tmpfs may be on its way).
      return out;
    case 'foreign-owner':
      rundirProblem('rundir-foreign-owner', `${actual.path} is owned by uid ${actual.node!.uid}, not ${uid}`);
      return out;
    default:
      break;
  }

  const rd = actual.node!;
  if (input.hold) return out;
  out.rundir = { ino: rd.ino, dev: rd.dev };
  const owner = uid;
  const group = rd.gid;
  const wanted = new Set(input.wanted);

  for (const instance of wanted) {
    const name = privateDirName(instance);
    const e = actual.entries.get(name) ?? null;
    const rec = created.get(name);
    const ours = rec !== undefined && sameNode(rec, e);
    if (rec && !ours) out.actions.push({ op: 'forget', name });
    if (e === null) {
      out.actions.push({ op: 'mkdir', name, instance, owner, group, recreate: rec !== undefined });
      continue;
    }
    if (e.kind === 'symlink') {
      out.problems.push({ code: 'privdir-symlink', name, instance, detail: `${actual.path}/${name} is a symbolic link; left untouched` });
      continue;
    }
    if (e.kind === 'mount') {
      out.problems.push({ code: 'privdir-not-dir', name, instance, detail: `${actual.path}/${name}: a filesystem that could block (FUSE, network) is mounted there; not entered` });
      continue;
    }
    if (e.kind !== 'dir') {
      out.problems.push({ code: 'privdir-not-dir', name, instance, detail: `${actual.path}/${name} is a ${e.kind}, not a directory; left untouched` });
      continue;
    }
    // Our own dir still owned by us means a create was interrupted before fchown.
    const ownerOk = e.uid === owner || (ours && e.uid === input.selfUid);
    if (!ownerOk) {
      out.problems.push({ code: 'privdir-foreign-owner', name, instance, detail: `${actual.path}/${name} is owned by uid ${e.uid}, not ${owner}; left untouched` });
      continue;
    }
    if (e.uid !== owner || e.gid !== group || e.mode !== PRIVATE_DIR_MODE) {
      out.actions.push({ op: 'fix', name, instance, ino: e.ino, dev: e.dev, owner, group, from: { uid: e.uid, gid: e.gid, mode: e.mode } });
    }
  }

  for (const [name, rec] of created) {
    const instance = instanceOfPrivateDir(name);
    if (instance === null) continue; // records hold only names rundird made from instances
    if (wanted.has(instance) || input.departing.has(instance)) continue;
    const e = actual.entries.get(name) ?? null;
    if (sameNode(rec, e)) {
      out.actions.push({ op: 'rmdir', name, instance, ino: rec.ino, dev: rec.dev });
    } else {
      out.actions.push({ op: 'forget', name });
      if (e !== null && input.removed.has(instance)) {
        out.problems.push({ code: 'privdir-left', name, instance, detail: `snap ${instance} is gone; ${actual.path}/${name} was replaced since rundird made it, left in place` });
      }
    }
  }

  for (const instance of input.removed) {
    const name = privateDirName(instance);
    if (created.has(name) || wanted.has(instance)) continue;
    const e = actual.entries.get(name) ?? null;
    if (e !== null) {
      out.problems.push({ code: 'privdir-left', name, instance, detail: `snap ${instance} is gone; ${actual.path}/${name} is not provably rundird's (no record of its making: another's, or made before records were lost), left in place` });
    }
  }
  return out;
}

export { fmtMode };
