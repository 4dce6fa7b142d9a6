// One record per UID: what was observed of its rundir, what rundird made there (with the
// inodes that prove it), the problems already reported and the timeline. The lifecycle state
// is derived from it (reconcile/lifecycle.ts); sync(uid) is the only writer.
import type { DirRecord, LinkRecord } from '../reconcile/links.js';
import { ABSENT, type JobSeen, type Observed } from '../reconcile/lifecycle.js';
import type { Problem } from '../reconcile/planner.js';
import { emptyRescue, type RescueRecord } from '../reconcile/rescue.js';
import type { LifecycleState } from '../world/logind.js';
import type { TimelineEntry } from '../world/timeline.js';
import type { CreatedRecord } from '../world/types.js';

/** What rundird made in one incarnation of a rundir, proven by inode (and device). */
export interface Made {
  /** The rundir these were made in; another directory (or mount) there means they are gone. */
  rundir: { ino: number; dev: number } | null;
  privdirs: Map<string, CreatedRecord>;
  links: Map<string, LinkRecord>;
  dirs: Map<string, DirRecord>;
}

export interface UidRecord {
  uid: number;
  observed: Observed;
  lifecycle: LifecycleState;
  made: Made;
  /**
   * What was made in the rundir's previous incarnation, while a mount covers it: restored if
   * that very directory comes back (the mount taken off), so its dirs are still rundird's.
   */
  covered: Made | null;
  /** Problems reported, by cause (`code:name`): each is said once, again only after it was put right. */
  problems: Map<string, Problem>;
  /** Problems not kept because of the cap: counted, not listed. */
  problemsLeftOut: number;
  timeline: TimelineEntry[];
  /** Jobs of user-runtime-dir@UID seen since the last sync (queued, or already over when read). */
  jobs: JobSeen[];
  /**
   * Private dirs rundird made that vanished while snapd is followed: snapd itself deletes them
   * when it removes a snap, before it says so. Not made again until snapd has answered once
   * more (answer count then) or the deadline (ms since the epoch) passed.
   */
  held: Map<string, { answers: number; until: number }>;
  /** Kiosk rescue (restore policy): what rundird showed in a covering tmpfs, the rundir it made again, failures said. */
  rescue: RescueRecord;
}

export const TIMELINE_LIMIT = 64;
export const PROBLEM_LIMIT = 256;

export const emptyMade = (): Made => ({ rundir: null, privdirs: new Map(), links: new Map(), dirs: new Map() });

export function newRecord(uid: number): UidRecord {
  return { uid, observed: ABSENT, lifecycle: 'absent', made: emptyMade(), covered: null, problems: new Map(), problemsLeftOut: 0, timeline: [], jobs: [], held: new Map(), rescue: emptyRescue() };
}

export function addTimeline(r: UidRecord, event: string, detail: string, at = new Date()): void {
  r.timeline.push({ at: at.toISOString(), event, detail });
  if (r.timeline.length > TIMELINE_LIMIT) r.timeline.splice(0, r.timeline.length - TIMELINE_LIMIT);
}

export function madeCount(m: Made): number {
  return m.privdirs.size + m.links.size + m.dirs.size;
}

/** A record with nothing worth keeping: absent, nothing made, nothing said, no timeline. */
export function isEmpty(r: UidRecord): boolean {
  return r.observed.status === 'absent' && r.covered === null && madeCount(r.made) === 0 && r.problems.size === 0 && r.timeline.length === 0 && r.jobs.length === 0 && r.held.size === 0 && r.rescue.shown.size === 0 && r.rescue.shownDirs.size === 0 && r.rescue.remade === null;
}
