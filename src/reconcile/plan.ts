// One UID's whole plan, pure: the lifecycle steps, the private dirs and the links together,
// from one snapshot of the world and the UID's record. A link may go into a private dir the
// same plan makes; everything made for a snap that is gone goes in the same plan, deepest first.
import type { Made } from '../controller/record.js';
import type { LinkWorld } from './links.js';
import type { LifecycleState, LogindFacts, SessionInfo } from '../world/logind.js';
import type { RundirActual, RundirStatus } from '../world/types.js';
import { instanceOfPrivateDir } from '../world/instances.js';
import { holdWrites, lifecycleSteps, type JobSeen } from './lifecycle.js';
import { planLinks, type LinkAction, type LinkProblem } from './links.js';
import { plan, rundirStatus, type Plan } from './planner.js';

/** The world as one sync read it. */
export interface UidSnapshot {
  uid: number;
  actual: RundirActual;
  logind: LogindFacts;
  /** The session that closed last (the cause of a closing rundir), and logind's stop delay. */
  lastClosed: SessionInfo | null;
  stopDelayUSec: number | null;
  wanted: readonly string[];
  departing: ReadonlySet<string>;
  removed: ReadonlySet<string>;
  /** What the link rules need, read only when links can be made (live, not held). */
  links: LinkWorld | null;
  /** Empty directories a killed run left under rundird's provable temporary names (reconcile/ownTemps.ts). */
  leftovers?: readonly string[];
  /**
   * snapd is followed (its answers are the inventory), how many answers it has given, and the
   * count a hold made now waits for (an answer already on its way was asked before what it
   * would have to say happened).
   */
  snapd: { followed: boolean; answers: number; waitFor: number };
  now: number;
}

/** What the plan needs of the record. */
export interface RecordView {
  lifecycle: LifecycleState;
  jobs: readonly JobSeen[];
  made: Made;
  covered: Made | null;
  held: ReadonlyMap<string, { answers: number; until: number }>;
}

export interface UidPlan {
  status: RundirStatus;
  live: boolean;
  /** Lifecycle states passed through, ending with the current one; empty when unchanged. */
  lifecycle: LifecycleState[];
  /** Writes wait (a tmpfs is about to cover a plain dir, or a purge runs). */
  hold: boolean;
  /** The rundir is another directory (or mount) than the one the records were made in. */
  newRundir: boolean;
  /** The records of this very directory, from before a mount covered it; they are ours again. */
  uncovered: Made | null;
  privdirs: Plan;
  links: LinkAction[];
  linkProblems: LinkProblem[];
  /** Private dirs that vanished and wait for snapd's next answer before they are made again. */
  newHolds: Map<string, { answers: number; until: number }>;
}

const LIVE = new Set<RundirStatus>(['plain', 'tmpfs', 'mounted']);
/** How long a vanished private dir waits for snapd to say whether its snap is being removed. */
export const SNAPD_HOLD_MS = 1000;

/** Whether a vanished private dir still waits for snapd's next answer. */
export function isHeld(h: { answers: number; until: number }, s: Pick<UidSnapshot, 'now' | 'snapd'>): boolean {
  return h.until > s.now && s.snapd.answers < h.answers;
}

export function planUid(s: UidSnapshot, r: RecordView, selfUid: number): UidPlan {
  const status = rundirStatus(s.actual);
  const live = LIVE.has(status);
  const steps = lifecycleSteps(r.lifecycle, status, s.logind, r.jobs);
  const hold = holdWrites(steps.at(-1) ?? r.lifecycle, status);
  const node = s.actual.node;
  const same = (m: Made | null) => !!node && !!m?.rundir && node.ino === m.rundir.ino && node.dev === m.rundir.dev;
  const newRundir = r.made.rundir !== null && !same(r.made);
  const uncovered = newRundir && same(r.covered) ? r.covered : null;
  // Records of another incarnation of the rundir say nothing about this one.
  const made = newRundir ? (uncovered ?? { rundir: null, privdirs: new Map(), links: new Map(), dirs: new Map() }) : r.made;

  // Something rundird made in a private dir (the dir itself, a link or a directory in it) is
  // gone while snapd is followed: snapd deletes a snap's private dir, contents first, when it
  // removes the snap, before its answers say so. Making anything there again would race it
  // (its rmdir fails, and so does `snap remove`): that private dir is left alone until snapd
  // has answered once more.
  const newHolds = new Map<string, { answers: number; until: number }>();
  const held = new Set<string>();
  for (const [name, h] of r.held) if (isHeld(h, s)) held.add(name);
  if (live && s.snapd.followed && !hold) {
    const vanished = new Set<string>();
    for (const name of made.privdirs.keys()) if (s.actual.entries.get(name) === null) vanished.add(name);
    const gone = (p: string) => s.links?.stat.get(p) === null;
    for (const t of made.links.keys()) if (gone(t)) vanished.add(t.split('/')[0]!);
    for (const d of made.dirs.keys()) if (gone(d)) vanished.add(d.split('/')[0]!);
    for (const name of vanished) {
      // Held once already (and released: snapd has answered): made again as usual.
      if (r.held.has(name) || !made.privdirs.has(name)) continue;
      newHolds.set(name, { answers: s.snapd.waitFor, until: s.now + SNAPD_HOLD_MS });
      held.add(name);
    }
  }
  const heldInstances = new Set<string>();
  for (const name of held) {
    const i = instanceOfPrivateDir(name);
    if (i) heldInstances.add(i);
  }
  const wanted = heldInstances.size ? s.wanted.filter((i) => !heldInstances.has(i)) : s.wanted;
  const departing = heldInstances.size ? new Set([...s.departing, ...heldInstances]) : s.departing;
  const inHeld = (p: string) => held.has(p.split('/')[0]!);

  const privdirs = plan({ uid: s.uid, actual: s.actual, wanted, departing, removed: s.removed, created: made.privdirs, selfUid, hold });
  let links: LinkAction[] = [];
  let linkProblems: LinkProblem[] = [];
  if (live && !hold && s.links?.overfull != null) {
    // Too much to read: nothing is linked, unlinked or forgotten until it holds less.
    const dir = s.links.overfull;
    linkProblems = [{ code: 'link-dir-overfull', target: dir === '' ? '.' : dir, instance: '', detail: `${dir === '' ? '' : `${dir}: `}more entries (or link candidates) than max-entries allows; its links are left as they are until it holds fewer` }];
  } else if (live && !hold && s.links) {
    const privdirsMade = new Map<string, { owner: number; group: number }>();
    for (const a of privdirs.actions) if (a.op === 'mkdir') privdirsMade.set(a.name, { owner: a.owner, group: a.group });
    // Nothing in a held private dir is linked, removed or forgotten meanwhile.
    const outside = <T>(m: ReadonlyMap<string, T>) => (held.size ? new Map([...m].filter(([k]) => !inHeld(k))) : m);
    const candidates = held.size ? s.links.candidates.filter((c) => !inHeld(c.target)) : s.links.candidates;
    const lp = planLinks({ uid: s.uid, candidates, stat: s.links.stat, links: outside(made.links), dirs: outside(made.dirs), privdirsMade });
    links = lp.actions;
    linkProblems = lp.problems;
  } else if (!live) {
    // The rundir is gone (or unusable): what was made in it went with it.
    links = [...made.links.keys()].map((target) => ({ op: 'forget' as const, target }));
    for (const dir of made.dirs.keys()) links.push({ op: 'forget-dir', dir });
  }
  return { status, live, lifecycle: steps, hold, newRundir, uncovered, privdirs, links, linkProblems, newHolds };
}
