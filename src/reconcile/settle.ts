// Settle, pure: from the record, the snapshot, the plan and what applying it did, the next
// record and the events to journal. No I/O; the controller journals what this returns.
import type { EventName } from '../journal/events.js';
import { emptyMade, PROBLEM_LIMIT, type UidRecord } from '../controller/record.js';
import type { LinkOutcome } from '../effects/links.js';
import type { Outcome } from '../effects/apply.js';
import { describeSession, type LifecycleState, type SessionInfo } from '../world/logind.js';
import { lifecycleEvent, needsRearm, type Observed } from './lifecycle.js';
import { isHeld, type UidPlan, type UidSnapshot } from './plan.js';
import { fmtMode, type Problem } from './planner.js';

export interface JournalEvent {
  event: EventName;
  fields: Record<string, unknown>;
  message: string;
  /** A line for the UID's timeline too. */
  timeline?: [string, string];
}

export interface Transition {
  prev: LifecycleState;
  state: LifecycleState;
  cause: string;
  session: SessionInfo | null;
  deadline: string | null;
}

export interface Settled {
  events: JournalEvent[];
  transitions: Transition[];
  /** The rundir got a mount: the status it had before (for the diagnosis of hidden sockets). */
  mountedFrom: Observed['status'] | null;
  /** The rundir is another directory or mount than before: watches inside it see nothing of it. */
  rearm: boolean;
  /** What rundird made changed (the records file is written again). */
  madeChanged: boolean;
}

export function settle(rec: UidRecord, s: UidSnapshot, p: UidPlan, outcomes: Outcome[], linkOutcomes: LinkOutcome[]): Settled {
  const out: Settled = { events: [], transitions: [], mountedFrom: null, rearm: false, madeChanged: false };
  const uid = rec.uid;
  const path = s.actual.path;
  const ev = (event: EventName, fields: Record<string, unknown>, message: string, timeline?: [string, string]) => out.events.push({ event, fields: { uid, ...fields }, message, ...(timeline ? { timeline } : {}) });

  // Lifecycle: every state passed through, with its cause.
  rec.jobs = [];
  for (const state of p.lifecycle) {
    const prev = rec.lifecycle;
    rec.lifecycle = state;
    const last = s.lastClosed;
    const delay = state === 'closing' ? s.stopDelayUSec : null;
    let cause = '';
    if ((state === 'closing' || state === 'stopping' || (state === 'absent' && prev !== 'starting')) && last) {
      cause = `after ${describeSession(last)} closed`;
      if (delay) cause += `; removal due in ${Math.round(delay / 1e6)} s (UserStopDelaySec)`;
    }
    const session = state === 'closing' || state === 'stopping' ? last : state === 'absent' ? last : null;
    out.transitions.push({ prev, state, cause, session, deadline: delay ? new Date(s.now + delay / 1000).toISOString() : null });
  }

  // The directory itself.
  const prev = rec.observed;
  const next: Observed = { status: p.status, ino: s.actual.node?.ino ?? null, mountId: s.actual.mount?.id ?? null };
  const le = lifecycleEvent(prev, next);
  if (le) {
    const why = le === 'rundir-refused' ? `; ${p.privdirs.problems[0]?.detail ?? ''}, not written into` : '';
    ev(le, { path, status: next.status, previous: prev.status, mount_id: next.mountId }, `${path}: ${prev.status} → ${next.status}${why}`, [le, `${prev.status} → ${next.status}`]);
    if (le === 'rundir-mounted') out.mountedFrom = prev.status;
  }
  out.rearm = needsRearm(prev, next);
  rec.observed = next;

  // What was made: a new incarnation starts with nothing.
  if (p.newRundir || !p.live) {
    if (rec.made.rundir !== null || rec.made.privdirs.size + rec.made.links.size + rec.made.dirs.size > 0) out.madeChanged = true;
    // A mount over the rundir hides what was made in it; the directory may come back.
    const mountedOver = p.live && s.actual.mount !== null && rec.made.rundir !== null && rec.made.rundir.dev !== s.actual.node?.dev;
    const covered = mountedOver ? rec.made : p.uncovered ? null : rec.covered;
    if (covered !== rec.covered) out.madeChanged = true;
    rec.covered = covered;
    rec.made = p.uncovered ?? emptyMade();
    if (!p.live) {
      rec.held.clear();
      if (p.status === 'absent') rec.covered = null;
    }
  }
  const made = rec.made;
  if (p.live && s.actual.node && made.rundir === null) {
    made.rundir = { ino: s.actual.node.ino, dev: s.actual.node.dev };
    out.madeChanged = true;
  }
  for (const [k, h] of p.newHolds) rec.held.set(k, h);

  const sizeBefore = made.privdirs.size + made.links.size + made.dirs.size;
  const problems: Problem[] = [...p.privdirs.problems];
  const privdirOutcome = (o: Outcome) => {
    const a = o.action;
    const at = `${path}/${a.name}`;
    if (a.op === 'forget') {
      made.privdirs.delete(a.name);
      return;
    }
    if (!o.ok) {
      if (o.retry) return; // the next read tells what is there
      if (a.op === 'rmdir') {
        made.privdirs.delete(a.name);
        problems.push({ code: 'privdir-left', name: a.name, instance: a.instance, detail: `snap ${a.instance} is gone; ${at} ${o.detail}` });
      } else problems.push({ code: 'privdir-write-failed', name: a.name, instance: a.instance, detail: `${at}: ${a.op} failed: ${o.code} ${o.detail}` });
      return;
    }
    const f = { path: at, instance: a.instance };
    if (a.op === 'mkdir') {
      if (o.record) made.privdirs.set(a.name, o.record);
      (a.recreate ? recreated : created).push({ at, instance: a.instance, owner: a.owner, group: a.group });
    } else if (a.op === 'fix') {
      ev('privdir-corrected', { ...f, from: { owner: a.from.uid, group: a.from.gid, mode: fmtMode(a.from.mode) }, to: { owner: a.owner, group: a.group, mode: '0700' } }, `corrected ${at} (was uid ${a.from.uid} gid ${a.from.gid} mode ${fmtMode(a.from.mode)})`);
    } else if (a.op === 'rmdir') {
      made.privdirs.delete(a.name);
      ev('privdir-removed', f, `removed ${at}: snap ${a.instance} is gone`);
    }
  };
  // Journaled in the order applied: private dirs made, links, private dirs removed.
  const created: MadeDir[] = [];
  const recreated: MadeDir[] = [];
  for (const o of outcomes) if (o.action.op !== 'rmdir') privdirOutcome(o);
  for (const [event, dirs] of [['privdir-created', created], ['privdir-recreated', recreated]] as const) {
    for (const r of madeRecords(path, dirs, event === 'privdir-recreated' ? 're-created' : 'created')) ev(event, r.fields, r.message);
  }

  for (const x of p.linkProblems) problems.push({ code: x.code, name: x.target, instance: x.instance, detail: `${path}/${x.detail}` });
  for (const o of linkOutcomes) {
    const a = o.action;
    for (const [d, r] of o.made ?? []) made.dirs.set(d, r);
    if (a.op === 'forget') {
      made.links.delete(a.target);
      continue;
    }
    if (a.op === 'forget-dir') {
      made.dirs.delete(a.dir);
      continue;
    }
    const target = a.op === 'rmdir' ? a.dir : a.target;
    const at = `${path}/${target}`;
    if (!o.ok) {
      if (o.code === 'ENOTOURS') {
        if (a.op === 'unlink') made.links.delete(a.target);
        if (a.op === 'rmdir') made.dirs.delete(a.dir);
      } else if (a.op === 'rmdir') {
        // Not empty (the user put something there): it stays, and is no longer ours to remove.
        if (o.code === 'ENOTEMPTY') made.dirs.delete(a.dir);
      } else if (o.retry) {
        // read again
      } else if (a.op === 'link' && o.code === 'EXDEV') problems.push({ code: 'link-exdev', name: a.target, instance: a.instance, detail: `${at}: ${a.source} is on another filesystem; a hard link is impossible and the rule allows no symlink` });
      else problems.push({ code: 'link-failed', name: target, instance: a.op === 'link' ? a.instance : null, detail: `${at}: ${o.code} ${o.detail ?? ''}` });
      continue;
    }
    if (a.op === 'link' && o.record) {
      made.links.set(a.target, o.record);
      ev(a.replace ? 'link-replaced' : 'link-created', { path: at, source: `${path}/${a.source}`, instance: a.instance, rule: a.rule, kind: o.record.kind, fell_back: o.fellBack || undefined }, `${a.replace ? 'relinked' : 'linked'} ${at} → ${a.source}${o.fellBack ? ' (symlink: another filesystem)' : ''}`);
    } else if (a.op === 'unlink') {
      const r = made.links.get(a.target);
      made.links.delete(a.target);
      ev('link-removed', { path: at, instance: r?.instance, rule: r?.rule, why: a.why }, `removed ${at}: ${a.why}`);
    } else if (a.op === 'rmdir') {
      made.dirs.delete(a.dir);
      ev('link-dir-removed', { path: at, instance: a.instance }, `removed ${at}: rundird made it for links that are gone`);
    }
  }
  for (const o of outcomes) if (o.action.op === 'rmdir') privdirOutcome(o);
  // A hold ends once it is released (snapd has answered, or its time is up) and this sync has
  // planned with it released; one whose dir is no longer rundird's ends at once.
  for (const [k, h] of rec.held) if (!p.newHolds.has(k) && (!isHeld(h, s) || !made.privdirs.has(k))) rec.held.delete(k);
  const after = made.privdirs.size + made.links.size + made.dirs.size;
  out.madeChanged ||= after !== sizeBefore || outcomes.some((o) => o.ok) || linkOutcomes.some((o) => o.ok || o.code === 'ENOTOURS' || o.code === 'ENOTEMPTY' || (o.made?.length ?? 0) > 0);

  // Problems: each said once per cause; again only after it was put right. Bounded per UID.
  const before = rec.problems;
  const now = new Map<string, Problem>();
  let leftOut = 0;
  for (const pr of problems) {
    const key = `${pr.code}:${pr.name ?? ''}`;
    if (now.has(key)) continue;
    if (now.size >= PROBLEM_LIMIT) {
      leftOut++;
      continue;
    }
    now.set(key, pr);
    // A refused rundir is said by its lifecycle event.
    if (before.has(key) || pr.code.startsWith('rundir-')) continue;
    const event: EventName = pr.code === 'privdir-left' ? 'privdir-left' : pr.code.startsWith('link-') ? 'link-refused' : 'privdir-refused';
    ev(event, { path: `${path}/${pr.name}`, instance: pr.instance ?? undefined, reason: pr.code }, pr.detail);
  }
  if (leftOut > 0 && rec.problemsLeftOut === 0) ev('privdir-refused', { path, reason: 'problems-capped', left_out: leftOut }, `${path}: more than ${PROBLEM_LIMIT} problems; ${leftOut} more not listed`);
  rec.problems = now;
  rec.problemsLeftOut = leftOut;
  return out;
}

interface MadeDir {
  at: string;
  instance: string;
  owner: number;
  group: number;
}

/** At most this many private dirs in one record (journald refuses an entry of over 1,024 fields). */
export const DIRS_PER_RECORD = 100;

/**
 * The private dirs one sync made, as records of up to DIRS_PER_RECORD dirs each, not one record
 * per dir: a login makes one per snap, and a wave of logins would otherwise fill journald's
 * rate limit (10,000 records in 30 s, shared by info and notice) with them. `path` and
 * `instance` are lists, which the journal gets as one RUNDIR_PATH= and SNAP_INSTANCE= per dir,
 * so `journalctl SNAP_INSTANCE=firefox` still finds the record that made firefox's.
 */
export function madeRecords(rundir: string, dirs: readonly MadeDir[], verb: string): { fields: Record<string, unknown>; message: string }[] {
  const out: { fields: Record<string, unknown>; message: string }[] = [];
  for (let i = 0; i < dirs.length; i += DIRS_PER_RECORD) {
    const part = dirs.slice(i, i + DIRS_PER_RECORD);
    const names = part.map((d) => d.at.slice(rundir.length + 1));
    out.push({
      fields: { path: part.map((d) => d.at), instance: part.map((d) => d.instance), owner: part[0]!.owner, group: part[0]!.group, mode: '0700', count: part.length },
      message: part.length === 1 ? `${verb} ${part[0]!.at}` : `${verb} ${part.length} private dirs in ${rundir}: ${names.join(', ')}`,
    });
  }
  return out;
}
