// Wires the sources to the reconciler: every event only marks UIDs dirty; a pass then reads the
// real state of each dirty UID, plans (pure) and applies (effects). Nothing here decides what
// to write and nothing here writes.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Subscription } from 'rxjs';
import type { Config } from '../config/config.js';
import { filterFor, parseUid, uidSelected } from '../config/config.js';
import { applyPlan, type Outcome } from '../effects/apply.js';
import { ensureRuntimeRoot } from '../effects/root.js';
import { close, fstat, openTrustedDir } from '../effects/safefs.js';
import { logEvent, type Log } from '../journal/logger.js';
import { ABSENT, holdWrites, lifecycleEvent, lifecycleState, needsRearm, type Observed } from '../reconcile/lifecycle.js';
import { Logind } from '../sources/dbus/logind.js';
import { describeSession, type LifecycleState } from '../world/logind.js';
import { Timelines, type TimelineEntry } from '../world/timeline.js';
import { fmtMode, namesToRead, plan, rundirStatus as rundirStatusOf, type Problem } from '../reconcile/planner.js';
import { watchMountTable } from '../sources/mounts.js';
import { watchDir } from '../sources/watchDir.js';
import { globToRegExp, matchesAny } from '../world/instances.js';
import { mountAt, readMounts, readRundir, type MountSnapshot } from '../world/read.js';
import { Inventory, scanSnapRoot } from '../world/snaps.js';
import { Diagnostics } from './diagnostics.js';
import { LinkKeeper } from './linkKeeper.js';
import { SnapdFollower } from './snapdFollower.js';
import type { LinkRule } from '../world/links.js';
import { dirname, basename } from 'node:path';
import { existsSync } from 'node:fs';
import { Passwd } from '../world/passwd.js';
import type { CreatedRecord, RundirStatus } from '../world/types.js';

export type Mode = 'inotify' | 'logind';

export interface DaemonOptions {
  log: Log;
  /** The daemon's effective uid; what a private dir it has made but not chowned yet is owned by. */
  selfUid?: number;
  findmnt?: string;
  /** Called each time a pass leaves nothing pending (for sd_notify STATUS=). */
  onIdle?: () => void;
  /** The system bus to follow logind and systemd on; null: do not use D-Bus. */
  busAddress?: string | null;
  /** How long start() waits for logind's first answer before the first pass. */
  busSettleMs?: number;
  /** The daemon's own PID, left out of process scans. */
  selfPid?: number;
}

export interface UidState {
  uid: number;
  path: string;
  status: RundirStatus;
  lifecycle: LifecycleState;
  mountId: number | null;
  privateDirs: string[];
  problems: Problem[];
}

/** UIDs handled per event-loop turn, so that a burst does not starve other I/O. */
const PASS_CHUNK = 64;
/** Immediate re-plans after the rundir changed under a plan, before backing off. */
const MAX_FAST_RETRIES = 5;
const RETRY_BACKOFF_MS = 200;

export class Daemon {
  private logind: Logind | null = null;
  private readonly timelines = new Timelines();
  private readonly lifecycle = new Map<number, LifecycleState>();
  private busDown = false;
  private cfg: Config;
  private readonly log: Log;
  private readonly selfUid: number;
  private readonly findmnt: string;
  private readonly onIdle: (() => void) | undefined;

  private rootFd: number | null = null;
  /** st_dev of the runtime root: a rundir on another device is a mount point. */
  private rootDev = -1;
  private mountsReadThisPass = false;
  private rootMountId: number | null = null;
  /** Whether rootMountId has been read since the root was opened (the first read only records it). */
  private rootMountKnown = false;
  private mounts: MountSnapshot = { top: new Map(), errors: [] };
  private readonly records = new Map<number, Map<string, CreatedRecord>>();
  private readonly observed = new Map<number, Observed>();
  private readonly reported = new Map<number, Map<string, Problem>>();
  private readonly watchers = new Map<number, Subscription>();
  /** Rundirs whose watch is (re-)armed once the pending writes are done. */
  private readonly toArm = new Map<number, string>();
  private readonly retries = new Map<number, number>();
  private readonly inventory = new Inventory();
  private inventoryTimer: NodeJS.Timeout | null = null;
  private retryTimers = new Map<number, NodeJS.Timeout>();
  private subs: Subscription[] = [];

  private readonly dirty = new Set<number>();
  private allDirty = false;
  private mountsDirty = false;
  private snapsDirty = false;
  private scheduled = false;
  private stopped = false;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(config: Config, opts: DaemonOptions) {
    this.cfg = config;
    this.log = opts.log;
    this.selfUid = opts.selfUid ?? process.geteuid?.() ?? 0;
    this.findmnt = opts.findmnt ?? 'findmnt';
    this.onIdle = opts.onIdle;
    this.busAddress = opts.busAddress === undefined ? null : opts.busAddress;
    this.busSettleMs = opts.busSettleMs ?? 3000;
    this.linkKeeper = new LinkKeeper(this.log, (uid) => this.markDirty(uid));
    this.snapd = new SnapdFollower(
      () => this.cfg.snapdSocket,
      this.log,
      () => {
        this.wantedCache.clear();
        this.snapsDirty = true;
        this.allDirty = true;
        this.schedule();
      },
    );
    this.diag = new Diagnostics(
      {
        mode: () => this.mode,
        runtimeRoot: () => this.cfg.runtimeRoot,
        lifecycle: (uid) => this.lifecycle.get(uid) ?? 'absent',
        linger: (uid) => this.linger(uid),
        userName: (uid) => this.passwd.name(uid),
        note: (uid, event, detail) => this.timelines.add(uid, event, detail),
        unitPids: async (unit) => (this.logind ? this.logind.unitPids(unit) : null),
      },
      this.log,
      { procRoot: config.procRoot, selfPid: opts.selfPid ?? process.pid },
    );
  }

  private readonly busAddress: string | null;
  private readonly busSettleMs: number;
  private readonly passwd = new Passwd();
  private readonly linkKeeper: LinkKeeper;
  private readonly snapd: SnapdFollower;
  readonly diag: Diagnostics;

  get mode(): Mode {
    return this.logind?.present ? 'logind' : 'inotify';
  }

  /** Whether logind keeps this UID's rundir without sessions; null without logind. */
  linger(uid: number): boolean | null {
    const f = this.logind?.facts(uid);
    if (!f?.logind) return null;
    return f.user?.linger ?? false; // a lingering user always has a user object
  }

  timeline(uid: number): TimelineEntry[] {
    return this.timelines.get(uid);
  }

  private startLogind(): Logind | null {
    if (this.busAddress === null) return null;
    const l = new Logind(
      {
        dirty: (uid) => this.markDirty(uid),
        dirtyAll: () => this.markAll(),
        note: (uid, event, detail) => {
          this.timelines.add(uid, event, detail);
          this.log.debug({ uid, timeline: event }, detail);
        },
        job: (uid, type) => this.noteState(uid, type === 'start' ? 'starting' : 'stopping', join(this.cfg.runtimeRoot, String(uid))),
        // Note the brief state only if the rundir has not been seen past it already.
        jobDone: (uid, type) => {
          const now = this.lifecycle.get(uid) ?? 'absent';
          const before = type === 'start' ? now === 'absent' || now === 'closing' || now === 'stopping' : now === 'live' || now === 'closing';
          if (before) this.noteState(uid, type === 'start' ? 'starting' : 'stopping', join(this.cfg.runtimeRoot, String(uid)));
        },
        unitJob: (unit) => this.diag.onUnitJob(unit),
        error: (what, e) => {
          const msg = e instanceof Error ? e.message : String(e);
          if (what === 'bus') {
            if (this.busDown) return; // said once per outage, not per retry
            this.busDown = true;
          }
          logEvent(this.log, 'bus-error', { source: what, error: msg }, `${what}: ${msg}`);
        },
        presence: (name, present) => {
          if (name === 'login1') this.busDown = false;
          if (name !== 'login1') return;
          logEvent(this.log, 'mode-changed', { mode: present ? 'logind' : 'inotify' }, present ? 'logind is on the bus: following it and systemd for the exact state of every rundir' : 'logind is not on the bus: running on inotify and the mount table alone');
        },
      },
      this.busAddress,
    );
    l.start();
    return l;
  }

  /** One line for systemctl status. */
  summary(): string {
    // Counted, not built from state(): it runs after every pass.
    let rundirs = 0;
    for (const o of this.observed.values()) if (o.status !== 'absent') rundirs++;
    let problems = 0;
    for (const [uid, m] of this.reported) if (this.observed.has(uid)) problems += m.size;
    return `${this.mode} mode: ${rundirs} rundirs, ${this.inventory.present.size} snap instances, ${problems} problems`;
  }

  get config(): Config {
    return this.cfg;
  }

  /** Starts the sources and resolves once the first full reconcile pass is done. */
  async start(): Promise<void> {
    this.openRoot();
    this.logind = this.startLogind();
    if (this.logind) {
      // The first pass should know what logind knows; without a bus it goes on after a while.
      let t: NodeJS.Timeout | undefined;
      await Promise.race([this.logind.settled, new Promise<void>((r) => (t = setTimeout(r, this.busSettleMs)))]);
      clearTimeout(t);
    }
    await this.snapd.refresh();
    this.startSources();
    this.snapsDirty = true;
    this.mountsDirty = true;
    this.allDirty = true;
    this.schedule();
    await this.idle();
    this.diag.requestScan();
  }

  /** Resolves when no reconcile work is pending. */
  idle(): Promise<void> {
    if (!this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.diag.stop();
    this.snapd.stop();
    this.logind?.stop();
    this.stopSources();
    if (this.inventoryTimer) clearTimeout(this.inventoryTimer);
    for (const t of this.retryTimers.values()) clearTimeout(t);
    this.retryTimers.clear();
    if (this.rootFd !== null) close(this.rootFd);
    this.rootFd = null;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Takes a new configuration (SIGHUP). Root paths that changed restart the sources. */
  reload(next: Config): void {
    const prev = this.cfg;
    this.cfg = next;
    this.wantedCache.clear();
    const rootsChanged = prev.runtimeRoot !== next.runtimeRoot || prev.snapRoot !== next.snapRoot || prev.mountinfo !== next.mountinfo;
    if (rootsChanged) {
      this.stopSources();
      if (prev.runtimeRoot !== next.runtimeRoot) {
        // What rundird knew and made belongs to the old tree.
        this.records.clear();
        this.observed.clear();
        this.reported.clear();
        if (this.rootFd !== null) close(this.rootFd);
        this.rootFd = null;
        this.openRoot();
      }
      this.startSources();
    }
    this.snapsDirty = true;
    this.mountsDirty = true;
    this.allDirty = true;
    this.schedule();
  }

  /** What the daemon believes now, for status output and tests. */
  state(): UidState[] {
    return [...this.observed.entries()]
      .filter(([, o]) => o.status !== 'absent')
      .map(([uid, o]) => ({
        uid,
        path: join(this.cfg.runtimeRoot, String(uid)),
        status: o.status,
        lifecycle: this.lifecycle.get(uid) ?? 'live',
        mountId: o.mountId,
        privateDirs: [...(this.records.get(uid)?.keys() ?? [])].sort(),
        problems: [...(this.reported.get(uid)?.values() ?? [])],
      }))
      .sort((a, b) => a.uid - b.uid);
  }

  instances(): { present: string[]; departing: string[] } {
    return { present: [...this.inventory.present].sort(), departing: [...this.inventory.departing.keys()].sort() };
  }

  // ---- sources -------------------------------------------------------------------------------

  private openRoot(): void {
    ensureRuntimeRoot(this.cfg.runtimeRoot);
    this.rootFd = openTrustedDir(this.cfg.runtimeRoot);
    this.rootDev = fstat(this.rootFd).dev;
    this.rootMountKnown = false;
  }

  private startSources(): void {
    const { runtimeRoot, snapRoot, mountinfo } = this.cfg;
    this.subs.push(
      watchDir(runtimeRoot).subscribe((e) => {
        if (e.type === 'error') return this.sourceError('runtime-root', e.error);
        if (e.type === 'ready') return this.markAll();
        const uid = parseUid(e.name.split('/')[0]!);
        if (uid !== null) this.markDirty(uid);
      }),
    );
    this.subs.push(
      watchDir(snapRoot, { depth: 1 }).subscribe((e) => {
        if (e.type === 'error') return this.sourceError('snap-root', e.error);
        this.snapsDirty = true;
        this.schedule();
        this.snapd.refreshSoon();
      }),
    );
    // snapd rewrites its state file on every install, removal and (dis)connection: ask again.
    const stateDir = dirname(this.cfg.snapdState);
    if (existsSync(stateDir)) {
      this.subs.push(
        watchDir(stateDir).subscribe((e) => {
          if (e.type === 'error') return this.sourceError('snapd-state', e.error);
          if (e.type !== 'ready' && 'name' in e && e.name.startsWith(basename(this.cfg.snapdState))) this.snapd.refreshSoon();
        }),
      );
    }
    this.subs.push(
      watchMountTable(mountinfo, this.findmnt).subscribe((e) => {
        if (e.type === 'error') {
          if (e.fatal) {
            logEvent(this.log, 'source-degraded', { source: 'mounts', error: e.error.message }, `cannot follow mount-table changes (${e.error.message}); a tmpfs mounted over a rundir is seen on the next event for it`);
          } else this.sourceError('mounts', e.error);
          return;
        }
        this.mountsDirty = true;
        this.schedule();
      }),
    );
  }

  private stopSources(): void {
    for (const s of this.subs.splice(0)) s.unsubscribe();
    for (const w of this.watchers.values()) w.unsubscribe();
    this.watchers.clear();
    this.linkKeeper.disarmAll();
  }

  /** The instances of this UID's private dirs that a rule entitles. */
  private entitled(uid: number, rule: LinkRule): string[] {
    const globs = rule.to.instances.map(globToRegExp);
    return this.wantedFor(uid).filter(
      (i) =>
        matchesAny(i, globs) ||
        rule.to.plugs.some((p) => this.snapd.state?.plugs.get(i)?.has(p)) ||
        rule.to.slots.some((p) => this.snapd.state?.slots.get(i)?.has(p)),
    );
  }

  links(uid: number): ReturnType<LinkKeeper['list']> {
    return this.linkKeeper.list(uid);
  }

  private sourceError(source: string, error: Error): void {
    logEvent(this.log, 'source-error', { source, error: error.message }, `${source} watch: ${error.message}`);
  }

  private armRundirWatch(uid: number, path: string): void {
    this.watchers.get(uid)?.unsubscribe();
    const sub = watchDir(path).subscribe((e) => {
      if (e.type === 'error') return this.sourceError(`rundir ${uid}`, e.error);
      this.markDirty(uid);
    });
    this.watchers.set(uid, sub);
  }

  private disarmRundirWatch(uid: number): void {
    this.toArm.delete(uid);
    this.watchers.get(uid)?.unsubscribe();
    this.watchers.delete(uid);
  }

  // ---- scheduling ----------------------------------------------------------------------------

  markDirty(uid: number): void {
    this.dirty.add(uid);
    this.schedule();
  }

  markAll(): void {
    this.allDirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    // setImmediate, not a timer: everything that arrived in this turn is merged, and nothing
    // waits while nothing happens.
    setImmediate(() => this.pass());
  }

  private pass(): void {
    if (this.stopped) return;
    try {
      this.collect();
    } catch (e) {
      this.log.error({ err: e }, 'reconcile pass failed');
    }
    const batch: number[] = [];
    for (const uid of this.dirty) {
      batch.push(uid);
      if (batch.length >= PASS_CHUNK) break;
    }
    for (const uid of batch) {
      this.dirty.delete(uid);
      try {
        this.reconcile(uid);
      } catch (e) {
        // One UID's trouble must not stop the others or the daemon.
        this.log.error({ uid, err: e }, 'reconcile failed for this uid');
      }
    }
    if (this.dirty.size > 0 || this.mountsDirty || this.snapsDirty || this.allDirty) {
      setImmediate(() => this.pass());
      return;
    }
    // Writes first, watches after: a new watch's 'ready' marks its UID dirty, so whatever
    // changed before it was armed is read again.
    for (const [uid, path] of this.toArm) this.armRundirWatch(uid, path);
    this.toArm.clear();
    this.scheduled = false;
    this.diag.evaluateSoon();
    this.onIdle?.();
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Turns the global hints (mounts, snaps, "everything") into dirty UIDs. */
  private collect(): void {
    if (this.snapsDirty) {
      this.snapsDirty = false;
      this.refreshInventory();
    }
    this.mountsReadThisPass = false;
    this.departingNow = null;
    // The table changes only with a mount hint; a rundir whose device disagrees with the
    // table (the hint still on its way) has it read again in reconcile().
    if (this.mountsDirty || this.allDirty) this.refreshMounts();
    if (this.allDirty) {
      this.allDirty = false;
      for (const uid of this.listRuntimeRoot()) this.dirty.add(uid);
      for (const uid of this.observed.keys()) this.dirty.add(uid);
    }
  }

  private readMountTable(): void {
    this.mountsReadThisPass = true;
    try {
      this.mounts = readMounts(this.cfg.mountinfo);
      for (const err of this.mounts.errors) this.log.warn({ source: 'mounts' }, err);
    } catch (e) {
      this.sourceError('mounts', e as Error);
    }
  }

  private refreshMounts(): void {
    this.readMountTable();
    if (!this.mountsDirty) return;
    this.mountsDirty = false;
    const rootMount = mountAt(this.mounts, this.cfg.runtimeRoot)?.id ?? null;
    if (!this.rootMountKnown) {
      this.rootMountKnown = true;
      this.rootMountId = rootMount;
    } else if (rootMount !== this.rootMountId) {
      // Something was mounted over the runtime root itself (or taken off it): every watch and
      // descriptor of the old one is blind to the new.
      this.rootMountId = rootMount;
      logEvent(this.log, 'runtime-root-remounted', { path: this.cfg.runtimeRoot, mount_id: rootMount }, `${this.cfg.runtimeRoot}: ${rootMount === null ? 'mount taken off' : 'new mount on it'}; watching it afresh`);
      this.stopSources();
      if (this.rootFd !== null) close(this.rootFd);
      this.openRoot();
      this.startSources();
      this.allDirty = true;
    }
    const prefix = this.cfg.runtimeRoot.endsWith('/') ? this.cfg.runtimeRoot : this.cfg.runtimeRoot + '/';
    for (const [point, m] of this.mounts.top) {
      if (!point.startsWith(prefix)) continue;
      const uid = parseUid(point.slice(prefix.length));
      if (uid !== null && this.observed.get(uid)?.mountId !== m.id) this.dirty.add(uid);
    }
    for (const [uid, o] of this.observed) {
      if (o.mountId !== null && mountAt(this.mounts, join(this.cfg.runtimeRoot, String(uid)))?.id !== o.mountId) this.dirty.add(uid);
    }
  }

  private listRuntimeRoot(): number[] {
    try {
      return readdirSync(this.cfg.runtimeRoot)
        .map(parseUid)
        .filter((u): u is number => u !== null);
    } catch (e) {
      this.sourceError('runtime-root', e as Error);
      return [];
    }
  }

  private refreshInventory(): void {
    let scan: Set<string>;
    try {
      // snapd's list when it has answered (the snap mount dir is the fallback).
      scan = this.snapd.state ? new Set(this.snapd.state.instances) : scanSnapRoot(this.cfg.snapRoot);
    } catch (e) {
      // Keep the last inventory: a transient read error must not make dirs go away.
      this.sourceError('snap-root', e as Error);
      return;
    }
    const before = new Set(this.inventory.present);
    const now = Date.now();
    const changed = this.inventory.update(scan, now, this.cfg.snapRemovalGrace * 1000);
    this.armInventoryTimer();
    if (!changed) return;
    this.wantedCache.clear();
    const added = [...this.inventory.present].filter((i) => !before.has(i));
    const departing = [...before].filter((i) => !this.inventory.present.has(i));
    logEvent(this.log, 'snaps-changed', { added, departing, installed: this.inventory.present.size }, `snap instances: ${this.inventory.present.size} installed` + (added.length ? `, added ${added.join(' ')}` : '') + (departing.length ? `, gone ${departing.join(' ')}` : ''));
    this.allDirty = true;
  }

  private armInventoryTimer(): void {
    if (this.inventoryTimer) clearTimeout(this.inventoryTimer);
    this.inventoryTimer = null;
    const next = this.inventory.nextDeadline();
    if (next === null) return;
    this.inventoryTimer = setTimeout(() => {
      this.inventoryTimer = null;
      if (this.inventory.expire(Date.now())) this.allDirty = true;
      this.armInventoryTimer();
      this.schedule();
    }, Math.max(0, next - Date.now()));
  }

  // ---- one UID -------------------------------------------------------------------------------

  private readonly wantedCache = new Map<number, string[]>();
  /** The departing set, built once per pass instead of once per UID. */
  private departingNow: Set<string> | null = null;

  /** Instances that get a private dir in this UID's rundir; cached until config or inventory change. */
  private wantedFor(uid: number): string[] {
    const hit = this.wantedCache.get(uid);
    if (hit) return hit;
    let out: string[] = [];
    if (uidSelected(this.cfg, uid)) {
      const f = filterFor(this.cfg, uid);
      out = [...this.inventory.present].filter((i) => matchesAny(i, f.include) && !matchesAny(i, f.exclude));
    }
    this.wantedCache.set(uid, out);
    return out;
  }

  private reconcile(uid: number): void {
    const created = this.records.get(uid) ?? new Map<string, CreatedRecord>();
    const wanted = this.wantedFor(uid);
    const departing = this.departingNow ??= this.inventory.departingSet();
    const names = namesToRead(wanted, departing, this.inventory.removed, created);
    let actual = readRundir(this.cfg.runtimeRoot, uid, names, this.mounts);
    const onOwnDevice = actual.node?.kind === 'dir' && actual.node.dev !== this.rootDev;
    if (actual.node?.kind === 'dir' && onOwnDevice !== (actual.mount !== null) && !this.mountsReadThisPass) {
      this.readMountTable();
      actual = { ...actual, mount: mountAt(this.mounts, actual.path) };
    }
    const status = rundirStatusOf(actual);
    const facts = this.logind?.facts(uid) ?? { logind: false, user: null, job: null };
    const state = lifecycleState(status, facts, this.lifecycle.get(uid));
    this.noteState(uid, state, actual.path);
    const hold = holdWrites(state, status);
    const p = plan({ uid, actual, wanted, departing, removed: this.inventory.removed, created, selfUid: this.selfUid, hold });

    const prev = this.observed.get(uid) ?? ABSENT;
    const next: Observed = { status: p.status, ino: actual.node?.ino ?? null, mountId: actual.mount?.id ?? null };
    const ev = lifecycleEvent(prev, next);
    if (ev) {
      const why = ev === 'rundir-refused' ? `; ${p.problems[0]?.detail ?? ''}, not written into` : '';
      logEvent(this.log, ev, { uid, path: actual.path, status: next.status, previous: prev.status, mount_id: next.mountId }, `${actual.path}: ${prev.status} → ${next.status}${why}`);
      this.timelines.add(uid, ev, `${prev.status} → ${next.status}`);
      if (ev === 'rundir-mounted') this.diag.onMounted(uid, prev.status);
    }
    const live = p.status === 'plain' || p.status === 'tmpfs' || p.status === 'mounted';
    if (live && (needsRearm(prev, next) || !this.watchers.has(uid))) this.toArm.set(uid, actual.path);
    // Watches inside the old directory (or under the old mount) see nothing of the new one.
    if (needsRearm(prev, next)) this.linkKeeper.disarm(uid);
    if (!live) {
      this.toArm.delete(uid);
      this.disarmRundirWatch(uid);
    }
    if (next.status === 'absent') this.observed.delete(uid);
    else this.observed.set(uid, next);

    const problems = [...p.problems];
    let stale = false;
    if (p.actions.length > 0 && this.rootFd !== null) {
      const res = applyPlan(this.rootFd, p, this.selfUid);
      stale = res.stale;
      for (const o of res.outcomes) {
        const pr = this.record(uid, created, actual.path, o);
        if (pr) problems.push(pr);
      }
    }
    if (created.size > 0) this.records.set(uid, created);
    else this.records.delete(uid);
    if (live && !hold && this.cfg.links.length > 0 && this.rootFd !== null) {
      const l = this.linkKeeper.reconcile(uid, actual.path, this.rootFd, this.cfg.links, (rule) => this.entitled(uid, rule));
      problems.push(...l.problems);
      stale ||= l.stale;
    } else if (!live) this.linkKeeper.forget(uid);
    this.report(uid, actual.path, problems);
    this.retryIfStale(uid, stale);
  }

  /** Logs a lifecycle transition with its cause, once. */
  private noteState(uid: number, state: LifecycleState, path: string): void {
    const prev = this.lifecycle.get(uid) ?? 'absent';
    if (state === 'absent') this.lifecycle.delete(uid);
    else this.lifecycle.set(uid, state);
    if (prev === state) return;
    let cause = '';
    const last = this.logind?.closedLast(uid);
    const delay = state === 'closing' ? this.logind?.stopDelayUSec : null;
    if ((state === 'closing' || state === 'stopping' || (state === 'absent' && prev !== 'starting')) && last) {
      cause = `after ${describeSession(last)} closed`;
      if (delay) cause += `; removal due in ${Math.round(delay / 1e6)} s (UserStopDelaySec)`;
    }
    const session = state === 'closing' || state === 'stopping' ? last : undefined;
    this.diag.onLifecycle(uid, prev, state, {
      status: this.observed.get(uid)?.status ?? 'absent',
      session: session ?? (state === 'absent' ? (last ?? null) : null),
      deadline: delay ? new Date(Date.now() + delay / 1000).toISOString() : null,
    });
    logEvent(
      this.log,
      'rundir-state',
      { uid, path, state, previous: prev, cause, session_id: session?.id, session_service: session?.service, session_tty: session?.tty, session_remote_host: session?.remoteHost },
      `${path}: ${prev} → ${state}${cause ? ` (${cause})` : ''}`,
    );
    this.timelines.add(uid, `state-${state}`, cause || `${prev} → ${state}`);
  }

  /** Keeps the record of what rundird made and logs what an action did. Returns a problem to report. */
  private record(uid: number, created: Map<string, CreatedRecord>, rundir: string, o: Outcome): Problem | null {
    const a = o.action;
    const path = `${rundir}/${a.name}`;
    if (a.op === 'forget') {
      created.delete(a.name);
      return null;
    }
    if (!o.ok) {
      if (o.retry) return null; // the next read tells what is there
      if (a.op === 'rmdir') {
        created.delete(a.name);
        return { code: 'privdir-left', name: a.name, instance: a.instance, detail: `snap ${a.instance} is gone; ${path} ${o.detail}` };
      }
      return { code: 'privdir-write-failed', name: a.name, instance: a.instance, detail: `${path}: ${a.op} failed: ${o.code} ${o.detail}` };
    }
    const f = { uid, path, instance: a.instance };
    if (a.op === 'mkdir') {
      if (o.record) created.set(a.name, o.record);
      logEvent(this.log, a.recreate ? 'privdir-recreated' : 'privdir-created', { ...f, owner: a.owner, group: a.group, mode: '0700' }, `${a.recreate ? 're-created' : 'created'} ${path}`);
    } else if (a.op === 'fix') {
      logEvent(this.log, 'privdir-corrected', { ...f, from: { owner: a.from.uid, group: a.from.gid, mode: fmtMode(a.from.mode) }, to: { owner: a.owner, group: a.group, mode: '0700' } }, `corrected ${path} (was uid ${a.from.uid} gid ${a.from.gid} mode ${fmtMode(a.from.mode)})`);
    } else if (a.op === 'rmdir') {
      created.delete(a.name);
      logEvent(this.log, 'privdir-removed', f, `removed ${path}: snap ${a.instance} is gone`);
    }
    return null;
  }

  /** Reports each problem once per cause (code and entry); again only after it was put right. */
  private report(uid: number, rundir: string, problems: Problem[]): void {
    const before = this.reported.get(uid);
    const now = new Map<string, Problem>();
    for (const pr of problems) {
      const key = `${pr.code}:${pr.name ?? ''}`;
      now.set(key, pr);
      // A refused rundir is said by its lifecycle event.
      if (before?.has(key) || pr.code.startsWith('rundir-')) continue;
      const event = pr.code === 'privdir-left' ? 'privdir-left' : pr.code.startsWith('link-') ? 'link-refused' : 'privdir-refused';
      logEvent(this.log, event, { uid, path: `${rundir}/${pr.name}`, instance: pr.instance ?? undefined, reason: pr.code }, pr.detail);
    }
    if (now.size > 0) this.reported.set(uid, now);
    else this.reported.delete(uid);
  }

  private retryIfStale(uid: number, stale: boolean): void {
    if (!stale) {
      this.retries.delete(uid);
      return;
    }
    const n = (this.retries.get(uid) ?? 0) + 1;
    this.retries.set(uid, n);
    if (n <= MAX_FAST_RETRIES) return this.markDirty(uid);
    // Something keeps changing the rundir under us (a loop swapping entries): slow down.
    if (this.retryTimers.has(uid)) return;
    this.retryTimers.set(
      uid,
      setTimeout(() => {
        this.retryTimers.delete(uid);
        this.retries.set(uid, 0);
        this.markDirty(uid);
      }, RETRY_BACKOFF_MS),
    );
  }
}

