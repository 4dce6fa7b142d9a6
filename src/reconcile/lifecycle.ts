// What changed about a rundir between two reads, as lifecycle events. Pure.
import type { EventName } from '../journal/events.js';
import type { RundirStatus } from '../world/types.js';
import type { JobType, LifecycleState, LogindFacts } from '../world/logind.js';

export interface Observed {
  status: RundirStatus;
  ino: number | null;
  mountId: number | null;
}

export const ABSENT: Observed = { status: 'absent', ino: null, mountId: null };

const MOUNTED = new Set<RundirStatus>(['tmpfs', 'mounted']);
const REFUSED = new Set<RundirStatus>(['symlink', 'not-dir', 'foreign-owner']);

export function lifecycleEvent(prev: Observed, next: Observed): EventName | null {
  if (prev.status === next.status && prev.ino === next.ino && prev.mountId === next.mountId) return null;
  if (next.status === 'absent') return 'rundir-removed';
  if (REFUSED.has(next.status)) return 'rundir-refused';
  const wasMounted = MOUNTED.has(prev.status);
  const isMounted = MOUNTED.has(next.status);
  if (!wasMounted && isMounted) return 'rundir-mounted';
  if (wasMounted && !isMounted) return 'rundir-unmounted';
  // Usable for the first time: new, no longer refused, or given to its user.
  if (prev.status === 'absent' || REFUSED.has(prev.status) || prev.status === 'root-owned') return 'rundir-appeared';
  return 'rundir-replaced';
}

/** A watch inside the rundir must be set again when it no longer sees the directory that is there. */
export function needsRearm(prev: Observed, next: Observed): boolean {
  return prev.ino !== next.ino || prev.mountId !== next.mountId;
}

/**
 * Where a rundir is in its life. A pending job of user-runtime-dir@UID.service says starting or
 * stopping whatever the directory looks like (JobRemoved does not say which it was; the job's
 * type, read when it was queued, does). Without logind only the directory speaks.
 */
export function lifecycleState(status: RundirStatus, f: LogindFacts, prev: LifecycleState = 'absent'): LifecycleState {
  if (f.job === 'start') return 'starting';
  if (f.job === 'stop') return 'stopping';
  if (status === 'absent') return 'absent';
  // A root-owned rundir of another UID is user-runtime-dir's plain directory: before its tmpfs
  // (elogind, a missed JobNew, UserNew on its way), or after the unmount of a purge.
  if (status === 'root-owned') return prev === 'closing' || prev === 'stopping' ? 'stopping' : 'starting';
  // user-runtime-dir@UID is stopped, its last job over: nothing purges this directory or will
  // (logind's stop of a stopped unit does nothing), whatever logind's user still says. It was
  // made after the purge, by a service outside any session, say. Trusting the user here said
  // closing, then stopping for good, when a restarted logind still held the user it was about
  // to collect (seen on systemd 257).
  if (f.runtimeUnit === 'inactive') return 'live';
  // Closing, and logind's user is gone (systemd < 256 says UserRemoved before the removal):
  // the purge runs, whether or not its stop job could be read. Never live again before absent.
  if (f.logind && f.user === null && (prev === 'closing' || prev === 'stopping')) return 'stopping';
  if (f.user?.state === 'closing') return 'closing';
  return 'live';
}

/**
 * Whether private dirs must wait: a start job is queued over a plain directory (its tmpfs is
 * about to hide whatever is made now), or the rundir is being purged.
 */
export function holdWrites(state: LifecycleState, status: RundirStatus): boolean {
  if (state === 'stopping') return true;
  return state === 'starting' && status !== 'tmpfs' && status !== 'mounted';
}

/** A job of user-runtime-dir@UID as seen: queued, or already over when it could be read. */
export interface JobSeen {
  type: JobType;
  done: boolean;
}

/**
 * The lifecycle states a rundir passed through since it was last synced, in order, ending with
 * the one it is in now; empty when nothing changed. The one place the lifecycle is decided. A
 * queued job is a state of its own even if it is over by now (a pass may come after it ended);
 * a job that was over before it could be read counts only if the rundir was not seen past it.
 */
export function lifecycleSteps(prev: LifecycleState, status: RundirStatus, f: LogindFacts, jobs: readonly JobSeen[]): LifecycleState[] {
  const out: LifecycleState[] = [];
  let s = prev;
  // A stop over, its unit stopped, and the rundir still here: it purged nothing (logind's stop
  // of a unit stopped already, as it collects a user; or a dir made since). Not a step.
  const stoppedNothing = f.job === null && f.runtimeUnit === 'inactive' && status !== 'absent';
  for (const j of jobs) {
    if (j.type === 'stop' && stoppedNothing) continue;
    const st: LifecycleState = j.type === 'start' ? 'starting' : 'stopping';
    const before = j.type === 'start' ? s === 'absent' || s === 'closing' || s === 'stopping' : s === 'live' || s === 'closing';
    if ((!j.done || before) && s !== st) out.push((s = st));
  }
  const now = lifecycleState(status, f, s);
  // Under logind a rundir becomes logind's tmpfs only through a start job: seen mounted with
  // no start seen (its JobNew still being read, or missed), it has passed through starting.
  if (f.logind && status === 'tmpfs' && now === 'live' && (s === 'absent' || s === 'stopping')) out.push((s = 'starting'));
  // Likewise a closing rundir seen gone has passed through stopping: under logind only the
  // purge removes it, and its stop job may have been over before it could be read (the rundir
  // then went before the job was known: seen on a loaded machine, in CI, on systemd 252).
  if (f.logind && now === 'absent' && s === 'closing') out.push((s = 'stopping'));
  if (now !== s) out.push(now);
  return out;
}
