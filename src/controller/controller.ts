// The controller: a queue of dirty UIDs, a read-only cache of global facts, one record per
// UID, and one sync(uid). Sources only add UIDs (or refresh facts, which say which UIDs a
// change touches); sync(uid) reads the world afresh, plans (pure), applies (effects, the only
// writer), settles (pure: the next record and the events) and journals. A lost or reordered
// event cannot leave a wrong state behind: the next sync of that UID reads the world again.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { parseUid } from '../config/config.js';
import { applyPlan } from '../effects/apply.js';
import { readStateFile, setAside, writeStateFile } from '../effects/stateFile.js';
import { loadTempKey, type TempKey } from '../effects/tempKey.js';
import { isOwnTemp, PRIVDIR_TEMP_PREFIX } from '../reconcile/ownTemps.js';
import { randomBytes } from 'node:crypto';
import { logEvent, type Log } from '../journal/logger.js';
import { lifecycleSteps, holdWrites, type JobSeen } from '../reconcile/lifecycle.js';
import { isHeld, planUid, type UidSnapshot } from '../reconcile/plan.js';
import { namesToRead, rundirStatus } from '../reconcile/planner.js';
import { settle, type Settled } from '../reconcile/settle.js';
import type { SessionInfo } from '../world/logind.js';
import type { NodeStat } from '../world/types.js';
import { rundirIO } from '../world/links.js';
import { readLinkWorld } from '../reconcile/links.js';
import { readRundir, RundirWalker } from '../world/read.js';
import { Facts } from './facts.js';
import { WorkQueue } from './queue.js';
import { addTimeline, isEmpty, madeCount, newRecord, type Made, type UidRecord } from './record.js';
import { assemble, parse, serializeUid, STORE_MAX_BYTES, storePath, StoreError, type Kept } from './store.js';
import { Watches } from './watches.js';
import { Rescuer } from './rescue.js';
import { rundirStatus as statusOf } from '../reconcile/planner.js';

/** How long after a change the records are written (coalescing a burst). */
const SAVE_DELAY_MS = 250;
/** Syncs that wait for the mount table to agree with a rundir's device before taking the table's word. */
const DISAGREE_RETRIES = 3;
/** How soon a rundir with a directory that could not be watched is read again. */
const ARM_RETRY_MS = 1000;

/** What the controller needs of the daemon around it. */
export interface ControllerHost {
  config(): Config;
  rootFd(): number | null;
  rootDev(): number;
  selfUid: number;
  log: Log;
  /** The session that closed last for a UID, and logind's stop delay. */
  lastClosed(uid: number): SessionInfo | null;
  stopDelayUSec(): number | null;
  /** Global hints turned into dirty UIDs (mounts, snaps, "everything"), once a turn. */
  hints(queue: WorkQueue): void;
  hasHints(): boolean;
  /** Settled lifecycle steps and mounts, for the diagnosis. */
  settled(uid: number, rec: UidRecord, s: Settled): void;
  /** Ask snapd again now (a private dir vanished: is its snap being removed?). */
  askSnapd(): void;
  sourceError(source: string, e: Error): void;
  onIdle(): void;
  /** Kiosk rescue: sockets that services outside any session hold in the UID's rundir (path → unit). */
  reliantSockets(uid: number): Map<string, { unit: string | null; label: string; pid: number }>;
  serversKnown(): boolean;
  requestScan(): void;
  gidOf(uid: number): number;
  /** More directories of a UID's rundir to watch (those of sockets rundirctl wait is waiting for). */
  extraWatchDirs(uid: number): string[];
}

/** What happened to a rundir's directory itself: said before the lifecycle state it leads to. */
const DIRECTORY_EVENTS: ReadonlySet<string> = new Set(['rundir-appeared', 'rundir-mounted', 'rundir-unmounted', 'rundir-replaced', 'rundir-removed', 'rundir-refused']);

/** The mounts' roots inside a rundir that the read judged local (tmpfs): the only ones the writes may enter. */
function mountRoots(snap: UidSnapshot): Map<string, { ino: number; dev: number }> {
  const out = new Map<string, { ino: number; dev: number }>();
  for (const [name, st] of snap.actual.entries) if (st?.mountRoot) out.set(name, st);
  for (const [rel, st] of snap.links?.stat ?? []) if (st?.mountRoot) out.set(rel, st);
  return out;
}

export class Controller {
  readonly records = new Map<number, UidRecord>();
  readonly queue: WorkQueue;
  readonly watches: Watches;
  readonly rescue: Rescuer;
  /** UIDs whose watches are set once the writes of this burst are done. */
  private readonly toWatch = new Map<number, Set<string>>();
  private readonly seenDirs = new Map<number, Map<string, NodeStat | null>>();
  private storeDirty = false;
  /** Each UID's entry in the records file as last written (null: nothing to keep), until it is synced again. */
  private readonly storeEntries = new Map<number, string | null>();
  private saveTimer: NodeJS.Timeout | null = null;
  private storeFile: string | null = null;
  /** UIDs whose rundir's device and the mount table disagreed, and how many syncs in a row. */
  private readonly disagreeing = new Map<number, number>();
  /** The key that proves rundird's temporary names (a random one until load() reads the kept one). */
  private tempKey: TempKey = { key: randomBytes(32), unkept: null };
  /** Why the records could not be saved, while they cannot (said once per cause). */
  private saveFailing: string | null = null;
  /** The last reason a watch could not be armed (said once, not once per directory). */
  private lastArmError: string | null = null;

  constructor(
    private readonly host: ControllerHost,
    readonly facts: Facts,
  ) {
    this.watches = new Watches(
      (uid) => this.queue.add(uid),
      (uid, dir, e) => host.sourceError(`rundir ${uid}${dir ? `/${dir}` : ''}`, e),
      (uid, dir, e) => {
        // Unwatched, a change there would go unseen: read it again (and try the watch) later.
        // Said once per cause (its errno), not once per directory or descriptor.
        const cause = (e as NodeJS.ErrnoException).code ?? e.message;
        if (cause !== this.lastArmError) host.sourceError(`rundir ${uid}${dir ? `/${dir}` : ''}`, new Error(`cannot watch: ${e.message}; read again every ${ARM_RETRY_MS / 1000} s until it can be`));
        this.lastArmError = cause;
        this.queue.addAfter(uid, ARM_RETRY_MS);
      },
    );
    this.rescue = new Rescuer({
      config: () => host.config(),
      rootFd: () => host.rootFd(),
      mounts: () => this.facts.mounts,
      selfUid: host.selfUid,
      log: host.log,
      reliantSockets: (uid) => host.reliantSockets(uid),
      gidOf: (uid) => host.gidOf(uid),
      serversKnown: () => host.serversKnown(),
      requestScan: () => host.requestScan(),
    });
    this.queue = new WorkQueue({
      hints: () => {
        this.facts.newTurn();
        this.rescue.newTurn();
        host.hints(this.queue);
      },
      hasHints: () => host.hasHints(),
      sync: (uid) => this.sync(uid),
      idle: () => this.idle(),
      error: (uid, e) => host.log.error({ uid: uid ?? undefined, err: e }, uid === null ? 'reconcile pass failed' : 'reconcile failed for this uid'),
    });
  }

  /** The sockets the restore policy would keep for a UID (who relies on them), for change detection. */
  rescueReliants(uid: number): string[] {
    return [...this.host.reliantSockets(uid).keys()].sort();
  }

  record(uid: number): UidRecord {
    let r = this.records.get(uid);
    if (!r) this.records.set(uid, (r = newRecord(uid)));
    return r;
  }

  /** logind saw a job of user-runtime-dir@UID (queued, or already over when read). */
  noteJob(uid: number, job: JobSeen): void {
    this.record(uid).jobs.push(job);
    this.queue.add(uid);
  }

  note(uid: number, event: string, detail: string): void {
    addTimeline(this.record(uid), event, detail);
  }

  // ---- the one sync --------------------------------------------------------------------------

  /** Told how long each sync took (the metrics' histogram). */
  syncObserver: ((seconds: number) => void) | null = null;

  /** Reads one UID's world, plans, applies, settles and journals (timed for the metrics). */
  sync(uid: number): void {
    if (!this.syncObserver) return this.syncOnce(uid);
    const t0 = process.hrtime.bigint();
    try {
      this.syncOnce(uid);
    } finally {
      this.syncObserver(Number(process.hrtime.bigint() - t0) / 1e9);
    }
  }

  private syncOnce(uid: number): void {
    const rec = this.record(uid);
    let snap = this.snapshot(uid, rec);
    if (this.disagrees(uid, snap)) return;
    if (!this.host.config().observeOnly && this.rescue.wants(uid, rec)) {
      // Kiosk rescue first: a rundir it makes again is then read afresh for its private dirs and links.
      const status = statusOf(snap.actual);
      const lifecycle = lifecycleSteps(rec.lifecycle, status, snap.logind, rec.jobs).at(-1) ?? rec.lifecycle;
      if (this.rescue.sync(uid, rec, snap.actual, status, lifecycle)) snap = this.snapshot(uid, rec);
    }
    const plan = planUid(snap, rec, this.host.selfUid);
    const rootFd = this.host.rootFd();
    // Observe-only (a confined snap): the plan is made and its problems said, nothing is done.
    const applied = rootFd === null || this.host.config().observeOnly ? { outcomes: [], linkOutcomes: [], stale: false } : applyPlan(rootFd, plan.privdirs, plan.links, this.host.selfUid, this.tempKey.key, mountRoots(snap), plan.hold ? [] : (snap.leftovers ?? []));
    if (applied.leftovers && applied.leftovers.length > 0) {
      const path = join(this.host.config().runtimeRoot, String(uid));
      logEvent(this.host.log, 'privdir-leftover-removed', { uid, path, names: applied.leftovers }, `${path}: removed ${applied.leftovers.length} private dir(s) an earlier run left half-made: ${applied.leftovers.join(', ')}`);
      addTimeline(rec, 'privdir-leftover-removed', applied.leftovers.join(', '));
    }
    const settled = settle(rec, snap, plan, applied.outcomes, applied.linkOutcomes);
    this.journal(uid, rec, settled);
    // Its entry is made afresh at the next save (any sync may have changed what is kept).
    this.storeEntries.delete(uid);
    if (settled.madeChanged) this.storeDirty = true;
    this.watch(uid, plan.live, plan.hold, settled.rearm, snap);
    if (plan.newHolds.size > 0) this.host.askSnapd();
    const waiting = [...rec.held.values()].filter((h) => isHeld(h, snap)).map((h) => h.until);
    if (waiting.length > 0) this.queue.addAfter(uid, Math.min(...waiting) - snap.now + 1);
    if (applied.stale) this.queue.retry(uid);
    else this.queue.forget(uid);
    if (isEmpty(rec)) this.records.delete(uid);
  }

  /**
   * The rundir is on another device than the runtime root but the mount table (read once a
   * turn) has no mount there, or the other way round: a mount came or went between the two
   * reads. Planning on that would take a fresh tmpfs for a replaced plain dir (and forget what
   * rundird made in the one it covers). Read again next turn, a few times; a rundir that stays
   * so (a filesystem whose directories have devices of their own) is then taken as the table says.
   */
  private disagrees(uid: number, snap: UidSnapshot): boolean {
    const node = snap.actual.node;
    const odd = node?.kind === 'dir' && node.dev !== this.host.rootDev() !== (snap.actual.mount !== null);
    const n = odd ? (this.disagreeing.get(uid) ?? 0) + 1 : 0;
    if (n === 0 || n > DISAGREE_RETRIES) {
      this.disagreeing.delete(uid);
      return false;
    }
    this.disagreeing.set(uid, n);
    this.queue.retry(uid);
    return true;
  }

  /** The world of one UID as it is now: its rundir, what the link rules need, the facts. */
  private snapshot(uid: number, rec: UidRecord): UidSnapshot {
    const cfg = this.host.config();
    const f = this.facts;
    const wanted = f.wantedFor(uid);
    const departing = f.departing();
    // The covered incarnation's names too: if the mount is taken off, its records are ours again.
    const known = rec.covered ? new Map([...rec.made.privdirs, ...rec.covered.privdirs]) : rec.made.privdirs;
    const names = namesToRead(wanted, departing, f.inventory.removed, known);
    const rootFd = this.host.rootFd();
    // One walker for the whole read: the rundir opened once (as a path only), listed once.
    const walker = rootFd === null ? null : new RundirWalker(rootFd, uid);
    try {
      let actual = readRundir(walker, cfg.runtimeRoot, uid, names, f.mounts, cfg.maxEntries, false);
      // A mount the table has not shown yet (made since it was read): read the table, then judge.
      if (actual.unknownMount) {
        f.readMountTable();
        actual = readRundir(walker, cfg.runtimeRoot, uid, names, f.mounts, cfg.maxEntries, true);
      }
      if (actual.node?.kind === 'dir') actual = { ...actual, mount: f.mountAt(actual.path, actual.node.dev !== this.host.rootDev()) };
      const logind = f.logindFacts(uid);
      const status = rundirStatus(actual);
      const live = status === 'plain' || status === 'tmpfs' || status === 'mounted';
      const hold = holdWrites(lifecycleSteps(rec.lifecycle, status, logind, rec.jobs).at(-1) ?? rec.lifecycle, status);
      const sameRundir = rec.made.rundir !== null && actual.node?.ino === rec.made.rundir.ino && actual.node.dev === rec.made.rundir.dev;
      const links =
        live && !hold && walker !== null
          ? readLinkWorld(rundirIO(walker, actual.path, f.mounts, cfg.maxEntries), actual.node!.dev, cfg.links, (rule) => f.entitled(wanted, rule), sameRundir ? rec.made.links : new Map(), sameRundir ? rec.made.dirs : new Map(), cfg.maxEntries)
          : null;
      // What a killed run left half-made, provably rundird's by its name: removed with the writes.
      const listed = live && walker !== null ? walker.list('', cfg.maxEntries) : null;
      const leftovers = Array.isArray(listed) ? listed.filter((n) => n.startsWith(PRIVDIR_TEMP_PREFIX) && isOwnTemp(this.tempKey.key, uid, n)) : [];
      return { ...this.snapshotOf(uid, actual, logind, wanted, departing, links), ...(leftovers.length > 0 ? { leftovers } : {}) };
    } finally {
      walker?.close();
    }
  }

  private snapshotOf(uid: number, actual: UidSnapshot['actual'], logind: UidSnapshot['logind'], wanted: UidSnapshot['wanted'], departing: UidSnapshot['departing'], links: UidSnapshot['links']): UidSnapshot {
    const f = this.facts;
    return {
      uid,
      actual,
      logind,
      lastClosed: this.host.lastClosed(uid),
      stopDelayUSec: this.host.stopDelayUSec(),
      wanted,
      departing,
      removed: f.inventory.removed,
      links,
      snapd: { followed: f.snapd.state !== null, answers: f.snapd.answers, waitFor: f.snapd.nextAnswer },
      now: Date.now(),
    };
  }

  /** Logs what settle said, and keeps the timeline. */
  private journal(uid: number, rec: UidRecord, s: Settled): void {
    const log = this.host.log;
    const say = (e: Settled['events'][number]) => {
      logEvent(log, e.event, e.fields, e.message);
      if (e.timeline) addTimeline(rec, e.timeline[0], e.timeline[1]);
    };
    // In causal order: what happened to the directory (it appeared, a tmpfs went on it) before
    // the lifecycle state it leads to, before what was done about it.
    const directory = s.events.filter((e) => DIRECTORY_EVENTS.has(e.event));
    for (const e of directory) say(e);
    for (const t of s.transitions) {
      const path = join(this.host.config().runtimeRoot, String(uid));
      const session = t.state === 'closing' || t.state === 'stopping' ? t.session : undefined;
      logEvent(
        log,
        'rundir-state',
        { uid, path, state: t.state, previous: t.prev, cause: t.cause, session_id: session?.id, session_service: session?.service, session_tty: session?.tty, session_remote_host: session?.remoteHost },
        `${path}: ${t.prev} → ${t.state}${t.cause ? ` (${t.cause})` : ''}`,
      );
      addTimeline(rec, `state-${t.state}`, t.cause || `${t.prev} → ${t.state}`);
    }
    for (const e of s.events) if (!DIRECTORY_EVENTS.has(e.event)) say(e);
    this.host.settled(uid, rec, s);
  }

  /** The watches a live rundir needs: the rundir itself and the directories the links depend on. */
  private watch(uid: number, live: boolean, hold: boolean, rearm: boolean, snap: UidSnapshot): void {
    if (!live) {
      this.toWatch.delete(uid);
      this.seenDirs.delete(uid);
      this.watches.drop(uid);
      return;
    }
    // Watches inside the old directory (or under the old mount) see nothing of the new one.
    if (rearm) this.watches.drop(uid);
    const dirs = new Set<string>(['']);
    for (const d of snap.links?.dirs ?? []) dirs.add(d);
    for (const d of this.rescue.watchDirs(uid)) dirs.add(d);
    for (const d of this.host.extraWatchDirs(uid)) dirs.add(d);
    if (hold && !rearm) for (const d of this.toWatch.get(uid) ?? []) dirs.add(d);
    const seen = new Map(snap.links?.stat ?? []);
    seen.set('', snap.actual.node);
    this.seenDirs.set(uid, seen);
    this.toWatch.set(uid, dirs);
  }

  /** Nothing pending: watches are armed (writes first, watches after), records saved. */
  private idle(): void {
    const rootFd = this.host.rootFd();
    if (rootFd !== null) {
      for (const [uid, dirs] of this.toWatch) {
        const seen = this.seenDirs.get(uid);
        // A new watch's 'ready' marks its UID dirty, so whatever changed before it was armed is read again.
        this.watches.set(uid, rootFd, dirs, (d) => seen?.get(d));
      }
    }
    this.toWatch.clear();
    this.seenDirs.clear();
    this.saveSoon();
    this.host.onIdle();
  }

  /** Every UID there is or was: the runtime root's entries and every record. */
  addAll(): void {
    for (const uid of this.listRuntimeRoot()) this.queue.add(uid);
    for (const uid of this.records.keys()) this.queue.add(uid);
  }

  private listRuntimeRoot(): number[] {
    try {
      return readdirSync(this.host.config().runtimeRoot).map(parseUid).filter((u): u is number => u !== null);
    } catch (e) {
      this.host.sourceError('runtime-root', e as Error);
      return [];
    }
  }

  /** Forgets everything of the old runtime root (a reload moved it). */
  reset(): void {
    this.rescue.dropAll();
    this.records.clear();
    this.storeEntries.clear();
    this.watches.dropAll();
    this.toWatch.clear();
    this.seenDirs.clear();
    this.storeFile = null;
  }

  // ---- what rundird made, across restarts ------------------------------------------------------

  /** Reads back the records of an earlier run (each is checked by inode in its UID's first sync). */
  load(): void {
    const cfg = this.host.config();
    const file = (this.storeFile = storePath(cfg.apiSocket, cfg.runtimeRoot));
    // The key of rundird's temporary names, beside the records: kept across restarts.
    this.tempKey = loadTempKey(file.replace(/\.json$/, '.key'), this.host.selfUid);
    if (this.tempKey.unkept) this.host.sourceError('temporary names', new Error(`key not kept (${this.tempKey.unkept}): what a killed run of another key left half-made is left alone`));
    this.rescue.load();
    let made: Map<number, Kept>;
    try {
      const text = readStateFile(file, STORE_MAX_BYTES);
      if (text === null) return;
      made = parse(text, cfg.runtimeRoot);
    } catch (e) {
      const why = (e as Error).message;
      let aside = '';
      try {
        aside = setAside(file);
      } catch (e2) {
        aside = `(could not be moved: ${(e2 as Error).message})`;
      }
      logEvent(this.host.log, 'records-set-aside', { path: file, set_aside: aside, error: why }, `${file}: ${e instanceof StoreError ? 'not a records file of this runtime root' : 'unreadable'} (${why}); set aside as ${aside}, starting with no records`);
      return;
    }
    let n = 0;
    this.storeEntries.clear();
    for (const [uid, k] of made) {
      const r = this.record(uid);
      r.made = k.made;
      r.covered = k.covered;
      n += madeCount(k.made) + (k.covered ? madeCount(k.covered) : 0);
    }
    logEvent(this.host.log, 'records-loaded', { path: file, uids: made.size, records: n }, `read back what rundird had made: ${n} records for ${made.size} rundirs (each checked by inode before it is trusted)`);
  }

  /**
   * Writes the records a little after what was made changed: a burst of logins settles many
   * times, and writing every rundir's records each time cost more than the burst itself. A
   * crash in that window forgets the newest records: what they name is then treated as
   * anyone else's (never removed), not trusted wrongly. A timer only while something is unsaved.
   */
  private saveSoon(): void {
    if (!this.storeDirty || this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.save();
    }, SAVE_DELAY_MS);
  }

  /** Writes the records now if what was made changed (and at stop, whatever is pending). */
  save(force = false): void {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    if (!this.storeDirty && !force) return;
    const cfg = this.host.config();
    const file = (this.storeFile ??= storePath(cfg.apiSocket, cfg.runtimeRoot));
    const entries: [number, string][] = [];
    for (const [uid, r] of this.records) {
      let e = this.storeEntries.get(uid);
      if (e === undefined) this.storeEntries.set(uid, (e = serializeUid({ made: r.made, covered: r.covered })));
      if (e !== null) entries.push([uid, e]);
    }
    for (const uid of this.storeEntries.keys()) if (!this.records.has(uid)) this.storeEntries.delete(uid);
    try {
      writeStateFile(file, assemble(cfg.runtimeRoot, entries));
      this.storeDirty = false;
      if (this.saveFailing !== null) this.host.sourceError('records', new Error(`${file} saved again`));
      this.saveFailing = null;
    } catch (e) {
      // The records stay in memory and are tried again at the next change; said once per cause
      // (its errno), naming the file, not once per change.
      const cause = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      if (cause !== this.saveFailing) this.host.sourceError('records', new Error(`${file} not saved: ${(e as Error).message}; kept in memory, saved at the next change that can be`));
      this.saveFailing = cause;
    }
  }
}
