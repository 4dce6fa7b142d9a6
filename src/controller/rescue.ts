// Kiosk rescue, `restore` policy: the part of sync(uid) that keeps the sockets of services
// outside any session through a root login and logind's purge (docs/kiosk.md). It reads
// (the kernel's socket table, the rescue directory, the plain rundir held open, the rundir as
// it is now), plans (reconcile/rescue.ts, pure), writes (effects/rescue.ts) and journals.
// The plain rundir is held open while the UID has the policy: when a tmpfs covers it, its
// sockets are still reachable through that descriptor, and rescue links can still be made.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { applyRescue, dropStaleTemps, openRescueDir, type RescueOutcome } from '../effects/rescue.js';
import { close, listDir, openDirAt } from '../effects/safefs.js';
import { logEvent, type Log } from '../journal/logger.js';
import type { EventName } from '../journal/events.js';
import { planRescue, relOfRescueName, rescueName, rescuePathsHere, type RescueAction, type RescueSnapshot } from '../reconcile/rescue.js';
import type { LifecycleState } from '../world/logind.js';
import { parseNetUnix } from '../world/procfs.js';
import { lstatBelowRoot, statAt, toNodeStat, UNKNOWN, type MountSnapshot } from '../world/read.js';
import type { NodeStat, RundirActual, RundirStatus } from '../world/types.js';
import { addTimeline, type UidRecord } from './record.js';

export interface RescueHost {
  config(): Config;
  rootFd(): number | null;
  /** The mount table as the facts cache has it. */
  mounts(): MountSnapshot;
  selfUid: number;
  log: Log;
  /** Sockets (absolute paths) that services outside any session hold in this UID's rundir: the unit (or process) and a PID of each. */
  reliantSockets(uid: number): Map<string, { unit: string | null; label: string; pid: number }>;
  /** A process scan has run since the start. */
  serversKnown(): boolean;
  /** A process scan soon (merged with others, at most one a second): who serves what may have changed. */
  requestScan(): void;
  /** The UID's primary group (the rundir's group when it is made again). */
  gidOf(uid: number): number;
}

/**
 * Where rescue links live: `/run/user/.rundird-rescue`, inside the runtime root, so on the same
 * mount as every plain rundir. Not under /run/rundird: the unit's ReadWritePaths= and
 * RuntimeDirectory= make both bind mounts, and link(2) across two mounts fails with EXDEV even
 * on one filesystem (the e2e on real systemd caught it). Not a UID: nothing else reads it.
 */
export const RESCUE_DIR = '.rundird-rescue';
export const rescueRoot = (cfg: Config): string => join(cfg.runtimeRoot, RESCUE_DIR);

export class Rescuer {
  /** Plain rundirs held open, per UID. */
  private readonly plain = new Map<number, { fd: number; ino: number; dev: number }>();
  /** UIDs whose rescue directory holds links (read at start, kept up to date). */
  private readonly withKept = new Set<number>();
  /** Listening paths in each server's socket table (its network namespace's), read at most once a turn per PID. */
  private readonly listening = new Map<number, Set<string>>();

  constructor(private readonly host: RescueHost) {}

  /** Reads which UIDs have rescue links (after a restart they are still there, and still rundird's). */
  load(): void {
    this.withKept.clear();
    try {
      for (const n of readdirSync(rescueRoot(this.host.config()))) if (/^(0|[1-9][0-9]{0,9})$/.test(n)) this.withKept.add(Number(n));
    } catch {
      // none yet
    }
  }

  newTurn(): void {
    this.listening.clear();
  }

  /** Whether this UID's sync has rescue work to look at. */
  wants(uid: number, rec: UidRecord): boolean {
    const r = rec.rescue;
    return this.restoreOn(uid) || this.withKept.has(uid) || this.plain.has(uid) || r.shown.size > 0 || r.shownDirs.size > 0;
  }

  private restoreOn(uid: number): boolean {
    return this.host.config().rescue.get(uid)?.has('restore') ?? false;
  }

  /** Directories to watch for the UID: those its rescued and reliant sockets are in. */
  watchDirs(uid: number): string[] {
    if (!this.restoreOn(uid)) return [];
    const prefix = join(this.host.config().runtimeRoot, String(uid)) + '/';
    const out = new Set<string>();
    for (const p of this.host.reliantSockets(uid).keys()) {
      if (!p.startsWith(prefix)) continue;
      const parts = p.slice(prefix.length).split('/');
      for (let i = 1; i < parts.length; i++) out.add(parts.slice(0, i).join('/'));
    }
    return [...out];
  }

  /**
   * The rescue part of one sync. Returns true when it wrote into the rundir's place (made it
   * again, or put a socket back), so that the rest of the sync reads it afresh.
   */
  sync(uid: number, rec: UidRecord, actual: RundirActual, status: RundirStatus, lifecycle: LifecycleState): boolean {
    const rootFd = this.host.rootFd();
    if (rootFd === null) return false;
    const cfg = this.host.config();
    const restore = this.restoreOn(uid);
    this.holdPlain(uid, rootFd, restore, actual, status);
    // Something changed in a plain rundir under the policy: a new server's socket, perhaps.
    // Who listens is known from a process scan; one is asked for (merged, at most one a second).
    if (restore && status === 'plain') this.host.requestScan();
    const path = join(cfg.runtimeRoot, String(uid));
    const prefix = path + '/';
    // Who listens: each reliant server's own socket table (rundird's network namespace is its
    // own under PrivateNetwork=, and /proc/net is hidden under ProcSubset=pid).
    const reliantUnits = new Map<string, { unit: string | null; label: string }>();
    const listening = new Set<string>();
    for (const [p, r] of this.host.reliantSockets(uid)) {
      if (!p.startsWith(prefix)) continue;
      const rel = p.slice(prefix.length);
      reliantUnits.set(rel, { unit: r.unit, label: r.label });
      if (this.listeningPaths(r.pid).has(p)) listening.add(rel);
    }
    let rescueFd: number | null = null;
    try {
      const kept = new Map<string, NodeStat>();
      if (restore || this.withKept.has(uid)) {
        rescueFd = openRescueDir(rescueRoot(cfg), uid);
        const names = listDir(rescueFd);
        dropStaleTemps(rescueFd, names);
        for (const name of names) {
          const rel = relOfRescueName(name);
          const st = rel === null ? null : statAt(rescueFd, name);
          if (rel !== null && st) kept.set(rel, toNodeStat(st));
        }
      }
      const held = this.plain.get(uid) ?? null;
      const inPlain = new Map<string, NodeStat | null>();
      if (held) for (const rel of reliantUnits.keys()) inPlain.set(rel, statBelow(held.fd, rel));
      const here = new Map<string, NodeStat | null>();
      const mounts = this.host.mounts();
      const walked = (rel: string) => {
        const st = lstatBelowRoot(mounts, cfg.runtimeRoot, `${path}/${rel}`);
        return st === UNKNOWN ? null : st;
      };
      if (actual.node?.kind === 'dir') for (const rel of rescuePathsHere(kept.keys(), rec.rescue)) here.set(rel, walked(rel));
      const snap: RescueSnapshot = {
        uid,
        restore,
        canShow: uid === 0,
        status,
        lifecycle,
        rundir: actual.node?.kind === 'dir' ? { ino: actual.node.ino, dev: actual.node.dev } : null,
        plain: held ? { proof: { ino: held.ino, dev: held.dev }, hidden: status !== 'plain' } : null,
        listening,
        serversKnown: this.host.serversKnown(),
        reliant: new Set(reliantUnits.keys()),
        inPlain,
        kept,
        here,
      };
      const actions = planRescue(snap, rec.rescue);
      if (actions.length === 0) {
        if (kept.size === 0 && rescueFd !== null && !restore) this.withKept.delete(uid);
        return false;
      }
      if (rescueFd === null) rescueFd = openRescueDir(rescueRoot(cfg), uid);
      const outcomes = applyRescue({ rootFd, rescueFd, rescuePath: join(rescueRoot(cfg), String(uid)), plainFd: held?.fd ?? null, rundir: snap.rundir, uid, gid: this.host.gidOf(uid), selfUid: this.host.selfUid }, actions);
      const wrote = this.settle(uid, rec, path, outcomes, reliantUnits);
      let left = 0;
      for (const name of listDir(rescueFd)) if (relOfRescueName(name) !== null) left++;
      if (left > 0) this.withKept.add(uid);
      else this.withKept.delete(uid);
      return wrote;
    } catch (e) {
      this.say(rec, 'rescue-failed', `setup::${(e as NodeJS.ErrnoException).code ?? 'ERROR'}`, { uid, path, error: (e as Error).message }, `${path}: kiosk rescue cannot work: ${(e as Error).message}`);
      return false;
    } finally {
      if (rescueFd !== null) close(rescueFd);
    }
  }

  /** Keeps the plain rundir open while the policy is on: the one there now, or the one a mount hides. */
  private holdPlain(uid: number, rootFd: number, restore: boolean, actual: RundirActual, status: RundirStatus): void {
    const held = this.plain.get(uid);
    const node = actual.node;
    const keep = restore && (status === 'plain' ? held !== undefined && node !== null && held.ino === node.ino && held.dev === node.dev : status === 'tmpfs' || status === 'mounted');
    if (held && !keep) {
      close(held.fd);
      this.plain.delete(uid);
    }
    if (restore && status === 'plain' && !this.plain.has(uid)) {
      try {
        const { fd, st } = openDirAt(rootFd, String(uid));
        if (st.uid !== uid || st.ino !== node?.ino) close(fd);
        else this.plain.set(uid, { fd, ino: st.ino, dev: st.dev });
      } catch {
        // gone meanwhile: the next sync
      }
    }
  }

  private listeningPaths(pid: number): Set<string> {
    const hit = this.listening.get(pid);
    if (hit) return hit;
    const out = new Set<string>();
    try {
      for (const e of parseNetUnix(readFileSync(join(this.host.config().procRoot, String(pid), 'net/unix'), 'utf8'))) if (e.listening) out.add(e.path);
    } catch {
      // gone: nothing of it is served any more
    }
    this.listening.set(pid, out);
    return out;
  }

  /** The next rescue record and the journal, from what was done. Returns whether the rundir's place was written. */
  private settle(uid: number, rec: UidRecord, path: string, outcomes: RescueOutcome[], units: Map<string, { unit: string | null; label: string }>): boolean {
    const r = rec.rescue;
    let wrote = false;
    for (const o of outcomes) {
      const a = o.action;
      const rel = relOf(a);
      const at = rel === '' ? path : `${path}/${rel}`;
      const key = `${a.op}:${rel}:${o.code ?? ''}`;
      if (!o.ok) {
        if (a.op === 'unshow-dir') r.shownDirs.delete(a.dir); // not empty: the user's now
        if (a.op === 'show' && o.code === 'EEXIST') continue; // someone's there: never replaced
        if (a.op === 'restore' && o.code === 'EEXIST') continue;
        this.say(rec, 'rescue-failed', key, { uid, path: at, action: a.op, error: `${o.code} ${o.detail ?? ''}` }, `${at}: kiosk rescue could not ${a.op}: ${o.code} ${o.detail ?? ''}`);
        continue;
      }
      for (const k of [...r.failed]) if (k.startsWith(`${a.op}:${rel}:`)) r.failed.delete(k);
      // UNIT= only for a real unit; a process outside any is named by its label (comm[PID]).
      const who = units.get(rel);
      const unit = who?.unit ?? undefined;
      const label = who?.label;
      switch (a.op) {
        case 'keep':
          logEvent(this.host.log, 'rescue-kept', { uid, path: at, unit, subject: label, rescue_link: `${rescueRoot(this.host.config())}/${uid}/${rescueName(a.rel)}` }, `${at}: kept a rescue link of this socket${label ? ` of ${label}` : ''} (restore policy)`);
          addTimeline(rec, 'rescue-kept', `${a.rel}${label ? ` (${label})` : ''}`);
          break;
        case 'drop':
          logEvent(this.host.log, 'rescue-dropped', { uid, path: at, reason: a.why }, `${at}: rescue link dropped: ${a.why}`);
          addTimeline(rec, 'rescue-dropped', `${a.rel}: ${a.why}`);
          break;
        case 'show':
          r.shown.set(a.rel, o.proof!);
          for (const [d, p] of o.made ?? []) r.shownDirs.set(d, p);
          logEvent(this.host.log, 'rescue-shown', { uid, path: at, rescue_link: `${rescueRoot(this.host.config())}/${uid}/${rescueName(a.rel)}` }, `${at}: a mount hides this socket; reachable again at its path (a symlink to its rescue link) until the session ends`);
          addTimeline(rec, 'rescue-shown', a.rel);
          break;
        case 'unshow':
          r.shown.delete(a.rel);
          logEvent(this.host.log, 'rescue-unshown', { uid, path: at }, `${at}: the rescue symlink removed (the session that hid the socket is ending)`);
          addTimeline(rec, 'rescue-unshown', a.rel);
          break;
        case 'unshow-dir':
          r.shownDirs.delete(a.dir);
          break;
        case 'forget-shown':
          r.shown.delete(a.rel);
          break;
        case 'remake':
          r.remade = o.proof!;
          wrote = true;
          logEvent(this.host.log, 'rescue-restored', { uid, path, step: 'rundir' }, `${path}: made again after it was removed under services that rely on it (restore policy)`);
          addTimeline(rec, 'rescue-restored', 'the rundir made again');
          break;
        case 'restore':
          wrote = true;
          logEvent(this.host.log, 'rescue-restored', { uid, path: at, unit, subject: label, step: 'socket' }, `${at}: put back${label ? ` for ${label}` : ''}; its server never stopped listening`);
          addTimeline(rec, 'rescue-restored', a.rel);
          break;
      }
    }
    return wrote;
  }

  private say(rec: UidRecord, event: EventName, key: string, fields: Record<string, unknown>, msg: string): void {
    if (rec.rescue.failed.has(key)) return;
    rec.rescue.failed.add(key);
    if (rec.rescue.failed.size > 64) rec.rescue.failed.delete(rec.rescue.failed.values().next().value!);
    logEvent(this.host.log, event, fields, msg);
    addTimeline(rec, event, msg);
  }

  dropAll(): void {
    for (const h of this.plain.values()) close(h.fd);
    this.plain.clear();
  }
}

function relOf(a: RescueAction): string {
  return a.op === 'remake' ? '' : a.op === 'unshow-dir' ? a.dir : a.rel;
}

/**
 * statx of a path below a directory held open (the plain rundir a mount may hide), walked one
 * component at a time: a symlink or a mount's root on the way ends the walk (null).
 */
function statBelow(dirfd: number, rel: string): NodeStat | null {
  const parts = rel.split('/');
  let fd = dirfd;
  try {
    for (let i = 0; i < parts.length - 1; i++) {
      let next;
      try {
        next = openDirAt(fd, parts[i]!).fd;
      } catch {
        return null;
      }
      if (fd !== dirfd) close(fd);
      fd = next;
    }
    const st = statAt(fd, parts.at(-1)!);
    return st === null ? null : toNodeStat(st);
  } finally {
    if (fd !== dirfd) close(fd);
  }
}
