// The link planner: from the candidates, what is on disk and what rundird made, the link
// actions and the problems. Pure. A link is a security decision: only sockets and regular
// files owned by the rundir's UID are linked, and nothing rundird did not make is touched.
import { posix } from 'node:path';
import type { LinkCandidate, LinkKind } from '../world/links.js';
import type { NodeStat } from '../world/types.js';

/** What rundird made at a target: the link's own inode (for a hard link, the source's too). */
export interface LinkRecord {
  ino: number;
  kind: LinkKind;
  source: string;
  rule: string;
  instance: string;
}

export type LinkAction =
  | { op: 'link'; rule: string; instance: string; source: string; target: string; kind: LinkKind; exdev: 'symlink' | 'warn'; sourceIno: number; replace: boolean; mkdirs: string[]; owner: number; group: number }
  | { op: 'unlink'; target: string; ino: number; why: string }
  | { op: 'forget'; target: string }
  /** The target already is the source's inode (made before a restart of rundird): ours from now on. */
  | { op: 'adopt'; target: string; record: LinkRecord };

export type LinkProblemCode = 'link-source-refused' | 'link-target-occupied' | 'link-parent-refused';

export interface LinkProblem {
  code: LinkProblemCode;
  target: string;
  instance: string;
  detail: string;
}

export interface LinkPlanInput {
  uid: number;
  candidates: LinkCandidate[];
  stat: Map<string, NodeStat | null>;
  records: ReadonlyMap<string, LinkRecord>;
}

const LINKABLE = new Set(['socket', 'file']);

export function planLinks(input: LinkPlanInput): { actions: LinkAction[]; problems: LinkProblem[] } {
  const { uid, stat, records } = input;
  const actions: LinkAction[] = [];
  const problems: LinkProblem[] = [];
  const kept = new Set<string>();
  const seen = new Set<string>();
  for (const c of input.candidates) {
    if (seen.has(c.target)) continue; // two rules for one target: the first wins
    seen.add(c.target);
    const src = stat.get(c.source) ?? null;
    if (!src) continue;
    const refuse = (code: LinkProblemCode, detail: string) => problems.push({ code, target: c.target, instance: c.instance, detail });
    if (!LINKABLE.has(src.kind)) {
      refuse('link-source-refused', `${c.source} is a ${src.kind}: only sockets and regular files are linked`);
      continue;
    }
    if (src.uid !== uid) {
      refuse('link-source-refused', `${c.source} belongs to UID ${src.uid}, not ${uid}: never linked across users`);
      continue;
    }
    // The directories above the target: the first must exist (the private dir, or the rundir
    // itself); deeper ones are made with the first's owner and mode 0700.
    const parts = c.target.split('/');
    const mkdirs: string[] = [];
    let owner = uid;
    let group = uid;
    let blocked: string | null = null;
    let wait = false;
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const st = stat.get(dir) ?? null;
      if (st === null) {
        if (i === 1) wait = true; // the private dir comes first (the privdir planner makes it)
        else mkdirs.push(dir);
        continue;
      }
      if (st.kind !== 'dir') blocked = `${dir} is a ${st.kind}, not a directory`;
      else if (st.uid !== uid) blocked = `${dir} belongs to UID ${st.uid}, not ${uid}`;
      if (blocked) break;
      if (i === 1) {
        owner = st.uid;
        group = st.gid;
      }
    }
    if (wait) continue;
    if (blocked) {
      refuse('link-parent-refused', `${c.target}: ${blocked}; not linking through it`);
      continue;
    }
    const tgt = stat.get(c.target) ?? null;
    const rec = records.get(c.target);
    const ours = tgt !== null && rec !== undefined && rec.ino === tgt.ino;
    const base = { op: 'link' as const, rule: c.rule, instance: c.instance, source: c.source, target: c.target, kind: c.kind, exdev: c.exdev, sourceIno: src.ino, mkdirs, owner, group };
    if (tgt === null) {
      actions.push({ ...base, replace: false });
      kept.add(c.target);
      continue;
    }
    if (!ours) {
      // Already the very same inode: made by rundird before it restarted (its records live in
      // memory), or by a helper script. Adopted, so that it follows the server from now on.
      if (c.kind === 'hard' && tgt.ino === src.ino) {
        actions.push({ op: 'adopt', target: c.target, record: { ino: tgt.ino, kind: 'hard', source: c.source, rule: c.rule, instance: c.instance } });
        kept.add(c.target);
        continue;
      }
      refuse('link-target-occupied', `${c.target} is there already (a ${tgt.kind} rundird did not make); left alone`);
      continue;
    }
    kept.add(c.target);
    // A hard link goes stale when the server makes its socket anew (new inode).
    if (rec.kind === 'hard' && tgt.ino !== src.ino) actions.push({ ...base, replace: true });
  }
  for (const [target, rec] of records) {
    if (kept.has(target)) continue;
    const tgt = stat.has(target) ? stat.get(target)! : undefined;
    // Not read this pass (its rule or entitlement went): it is still ours if its inode says so;
    // the effects module checks the inode again right before unlinking.
    if (tgt === null) actions.push({ op: 'forget', target });
    else if (tgt === undefined || tgt.ino === rec.ino) actions.push({ op: 'unlink', target, ino: rec.ino, why: tgt === undefined ? 'no longer entitled' : 'its source is gone' });
    else actions.push({ op: 'forget', target }); // replaced by someone else: not ours any more
  }
  return { actions, problems };
}

/** A symlink's value from the target's directory to the source, both rundir-relative. */
export function symlinkValue(source: string, target: string): string {
  return posix.relative(posix.dirname(target), source);
}
