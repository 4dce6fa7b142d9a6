// The wiring: sources (inotify, the mount table, the snap root, snapd, logind and systemd1)
// refresh the facts cache or add UIDs to the controller's queue; the controller's sync(uid)
// does the rest (src/controller/). Nothing here decides what to write and nothing here writes.
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Subscription } from 'rxjs';
import type { Config } from '../config/config.js';
import { parseUid } from '../config/config.js';
import { Controller } from '../controller/controller.js';
import { Facts } from '../controller/facts.js';
import type { WorkQueue } from '../controller/queue.js';
import { ensureRuntimeRoot } from '../effects/root.js';
import { close, fstat, openTrustedDir } from '../effects/safefs.js';
import { logEvent, observeEvents, type Log } from '../journal/logger.js';
import { Metrics } from '../metrics/metrics.js';
import { writeFileIn } from '../effects/stateFile.js';
import type { Problem } from '../reconcile/planner.js';
import { Logind } from '../sources/dbus/logind.js';
import { watchMountTable } from '../sources/mounts.js';
import { watchDir } from '../sources/watchDir.js';
import { inotifyDoubt } from '../sources/inotifyDoubt.js';
import { Waiters } from './waiters.js';
import type { LifecycleState } from '../world/logind.js';
import { Passwd } from '../world/passwd.js';
import type { TimelineEntry } from '../world/timeline.js';
import type { RundirStatus } from '../world/types.js';
import { Diagnostics } from './diagnostics.js';
import { SnapdFollower } from '../sources/snapdFollower.js';

export type Mode = 'inotify' | 'logind';

/** The snap root is read once more this long after its last event. */
const SNAP_ROOT_RESCAN_MS = 300;
/** A full resync after lost events runs at most this often (a flooding user could ask for it every turn). */
const RESYNC_MIN_INTERVAL_MS = 1000;
/** events-lost is said at most this often; the resyncs in between are counted in the next one. */
const EVENTS_LOST_LOG_MS = 60_000;

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
  /** Problems beyond the per-rundir cap, counted. */
  problemsLeftOut: number;
}

export interface LinkView {
  target: string;
  source: string;
  rule: string;
  instance: string;
  kind: string;
}

/** How long the first pass waits for snapd's first answer before it serves from the snap root. */
const SNAPD_FIRST_ANSWER_MS = 250;
/** How soon, and at most how often, the runtime root's failed watch is tried again. */
const ROOT_WATCH_RETRY_MS = 1000;
const ROOT_WATCH_RETRY_MAX_MS = 30_000;
/** The textfile for node_exporter is written at most this often. */
const TEXTFILE_EVERY_MS = 1000;

export class Daemon {
  private cfg: Config;
  private readonly log: Log;
  private readonly findmnt: string;
  private readonly onIdleCb: (() => void) | undefined;
  private readonly busAddress: string | null;
  private readonly busSettleMs: number;
  private readonly passwd = new Passwd();
  private readonly snapd: SnapdFollower;
  private readonly facts: Facts;
  private readonly ctl: Controller;
  readonly diag: Diagnostics;
  readonly waiters: Waiters;
  readonly metrics: Metrics;
  private textfileTimer: NodeJS.Timeout | null = null;
  private textfileFailing: string | null = null;
  private logind: Logind | null = null;
  private busDown = false;
  /** The bus answered once: a later ENOENT is an outage (bus-error), not a machine without one. */
  private busSeen = false;

  private rootFd: number | null = null;
  /** st_dev of the runtime root: a rundir on another device is a mount point. */
  private rootDev = -1;
  private subs: Subscription[] = [];
  private inventoryTimer: NodeJS.Timeout | null = null;
  private snapRootRescan: NodeJS.Timeout | null = null;
  // Global hints, turned into dirty UIDs once a turn (hints()).
  private allDirty = false;
  private mountsDirty = false;
  private snapsDirty = false;
  // Full resyncs after inotify events may have been lost.
  private resyncTimer: NodeJS.Timeout | null = null;
  private lastResync = 0;
  private lastLostLog = 0;
  private resyncsUnsaid = 0;
  /** What the restore policy last saw of who relies on each UID's rundir. */
  private readonly rescueSeen = new Map<number, string>();
  /** Linger asked for (by policy), per UID: once, not on every warning. */
  private readonly lingerAsked = new Set<number>();

  constructor(config: Config, opts: DaemonOptions) {
    this.cfg = config;
    this.log = opts.log;
    this.findmnt = opts.findmnt ?? 'findmnt';
    this.onIdleCb = opts.onIdle;
    this.busAddress = opts.busAddress === undefined ? null : opts.busAddress;
    this.busSettleMs = opts.busSettleMs ?? 3000;
    this.snapd = new SnapdFollower(
      () => this.cfg.snapdSocket,
      this.log,
      () => {
        this.facts.snapsChanged();
        this.snapsDirty = true;
        this.allDirty = true;
        this.ctl.queue.kick();
      },
      // A sync waiting for snapd's next word (a private dir vanished) goes on.
      () => {
        for (const [uid, r] of this.ctl.records) if (r.held.size > 0) this.ctl.queue.add(uid);
      },
    );
    this.facts = new Facts(config, this.log, this.snapd, (s, e) => this.sourceError(s, e));
    this.ctl = new Controller(
      {
        config: () => this.cfg,
        rootFd: () => this.rootFd,
        rootDev: () => this.rootDev,
        selfUid: opts.selfUid ?? process.geteuid?.() ?? 0,
        log: this.log,
        lastClosed: (uid) => this.logind?.closedLast(uid) ?? null,
        stopDelayUSec: () => this.logind?.stopDelayUSec ?? null,
        hints: (q) => this.hints(q),
        hasHints: () => this.mountsDirty || this.snapsDirty || this.allDirty,
        settled: (uid, rec, s) => {
          this.waiters.check(uid);
          for (const t of s.transitions) this.diag.onLifecycle(uid, t.prev, t.state, { status: rec.observed.status, session: t.session, deadline: t.deadline });
          if (s.mountedFrom) this.diag.onMounted(uid, s.mountedFrom);
        },
        askSnapd: () => void this.snapd.refresh(),
        sourceError: (s, e) => this.sourceError(s, e),
        onIdle: () => {
          this.diag.evaluateSoon();
          this.onIdleCb?.();
        },
        reliantSockets: (uid) => {
          const out = new Map<string, { unit: string | null; label: string; pid: number }>();
          for (const r of this.diag.reliants()) if (r.uid === uid && !r.inSession) for (const p of r.sockets) out.set(p, { unit: r.unit, label: r.label, pid: r.mainPid });
          return out;
        },
        serversKnown: () => this.diag.lastScan !== null,
        requestScan: () => this.diag.requestScanLater(1000),
        gidOf: (uid) => this.passwd.gid(uid),
        extraWatchDirs: (uid) => this.waiters.dirs(uid),
      },
      this.facts,
    );
    this.metrics = new Metrics(
      {
        lifecycles: () => [...this.ctl.records.values()].map((r) => ({ uid: r.uid, state: r.lifecycle })),
        queueDepth: () => this.ctl.queue.depth,
        problems: () => [...this.ctl.records.values()].reduce((n, r) => n + r.problems.size + r.problemsLeftOut, 0),
        warningsInForce: () => this.diag.current().length,
        watches: () => this.ctl.watches.size,
        degraded: () => this.degraded.size,
      },
      this.cfg.metricsUidLabels,
    );
    // What is journaled is what is counted; the textfile follows, at most once a second.
    observeEvents((event, fields) => {
      this.metrics.observe(event, fields);
      this.textfileSoon();
    });
    this.ctl.syncObserver = (s) => this.metrics.observeSync(s);
    this.waiters = new Waiters({
      rundir: (uid) => join(this.cfg.runtimeRoot, String(uid)),
      runtimeRoot: () => this.cfg.runtimeRoot,
      mounts: () => this.facts.mounts,
      live: (uid) => {
        const r = this.ctl.records.get(uid);
        const st = r?.observed.status;
        return (st === 'plain' || st === 'tmpfs' || st === 'mounted') && (r!.lifecycle === 'live' || r!.lifecycle === 'absent');
      },
    });
    this.diag = new Diagnostics(
      {
        mode: () => this.mode,
        runtimeRoot: () => this.cfg.runtimeRoot,
        mounts: () => this.facts.mounts,
        lifecycle: (uid) => this.ctl.records.get(uid)?.lifecycle ?? 'absent',
        linger: (uid) => this.linger(uid),
        userName: (uid) => this.passwd.name(uid),
        note: (uid, event, detail) => this.ctl.note(uid, event, detail),
        unitPids: async (unit) => (this.logind ? this.logind.unitPids(unit) : null),
        hasSession: (uid) => (this.logind?.facts(uid).user?.sessions.length ?? 0) > 0,
        raised: (w) => {
          // The linger policy: logind is asked to keep the rundir the moment it is known to be at risk.
          if ((w.event === 'reliant-without-linger' || w.event === 'rundir-closing-under-services') && this.cfg.rescue.get(w.uid)?.has('linger')) void this.lingerFor(w.uid, w.subject, 'policy');
        },
        evaluated: () => {
          // The restore policy acts on who relies on what: its UIDs are synced when that changed.
          for (const uid of this.cfg.rescue.keys()) {
            const sig = [...this.ctl.rescueReliants(uid)].join('\n');
            if (sig === (this.rescueSeen.get(uid) ?? '')) continue;
            this.rescueSeen.set(uid, sig);
            this.ctl.queue.add(uid);
          }
        },
      },
      this.log,
      { procRoot: config.procRoot, selfPid: opts.selfPid ?? process.pid, observeOnly: config.observeOnly === true },
    );
  }

  get mode(): Mode {
    return this.logind?.present ? 'logind' : 'inotify';
  }

  get config(): Config {
    return this.cfg;
  }

  /**
   * Kiosk rescue, linger: asks logind to keep the UID's rundir for good. By policy once per UID
   * (a refusal is said, not retried in a loop); by hand (rundirctl rescue) whenever asked.
   */
  async lingerFor(uid: number, cause: string, by: 'policy' | 'rundirctl'): Promise<{ ok: boolean; error?: string }> {
    const path = join(this.cfg.runtimeRoot, String(uid));
    if (by === 'policy') {
      if (this.lingerAsked.has(uid)) return { ok: true };
      this.lingerAsked.add(uid);
    }
    if (this.linger(uid) === true) return { ok: true };
    try {
      if (this.cfg.observeOnly) throw new Error('rundird runs observe-only (--observe-only): it changes nothing');
      if (!this.logind?.present) throw new Error('logind is not on the system bus');
      await this.logind.setUserLinger(uid);
      logEvent(this.log, 'rescue-linger', { uid, path, unit: cause, by }, `asked logind to keep ${path} for good (linger), ${by === 'policy' ? `because ${cause} relies on it outside any session (linger policy)` : 'by hand (rundirctl rescue)'}`);
      this.ctl.note(uid, 'rescue-linger', by === 'policy' ? `for ${cause}` : 'by hand');
      return { ok: true };
    } catch (e) {
      const error = (e as Error).message;
      logEvent(this.log, 'rescue-failed', { uid, path, action: 'linger', error }, `could not ask logind to keep ${path} for good: ${error}`);
      this.ctl.note(uid, 'rescue-failed', `linger: ${error}`);
      return { ok: false, error };
    }
  }

  /**
   * node_exporter's textfile (metrics-textfile: DIR): rundird.prom written whole, when something
   * was counted, at most once a second; no timer while nothing happens.
   */
  private textfileSoon(): void {
    if (this.cfg.metricsTextfile === null || this.textfileTimer || this.sourcesStopped) return;
    this.textfileTimer = setTimeout(() => {
      this.textfileTimer = null;
      void this.writeTextfile();
    }, TEXTFILE_EVERY_MS);
  }

  async writeTextfile(): Promise<void> {
    const dir = this.cfg.metricsTextfile;
    if (dir === null) return;
    this.metrics.takeChanged();
    try {
      writeFileIn(dir, 'rundird.prom', await this.metrics.text());
      this.textfileFailing = null;
    } catch (e) {
      const cause = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      if (cause !== this.textfileFailing) this.sourceError('metrics-textfile', new Error(`${dir}/rundird.prom not written: ${(e as Error).message}`));
      this.textfileFailing = cause;
    }
  }

  /** Reads one UID's world again soon (a new wait watches more of it). */
  kick(uid: number): void {
    this.ctl.queue.add(uid);
  }

  /** Whether logind keeps this UID's rundir without sessions; null without logind. */
  linger(uid: number): boolean | null {
    const f = this.logind?.facts(uid);
    if (!f?.logind) return null;
    return f.user?.linger ?? false; // a lingering user always has a user object
  }

  timeline(uid: number): TimelineEntry[] {
    return [...(this.ctl.records.get(uid)?.timeline ?? [])];
  }

  /** One line for systemctl status. */
  summary(): string {
    let rundirs = 0;
    let problems = 0;
    for (const r of this.ctl.records.values()) {
      if (r.observed.status === 'absent') continue;
      rundirs++;
      problems += r.problems.size;
    }
    return `${this.mode} mode: ${rundirs} rundirs, ${this.facts.inventory.present.size} snap instances, ${problems} problems`;
  }

  /** What the daemon believes now, for status output and tests. */
  state(): UidState[] {
    return [...this.ctl.records.values()]
      .filter((r) => r.observed.status !== 'absent')
      .map((r) => ({
        uid: r.uid,
        path: join(this.cfg.runtimeRoot, String(r.uid)),
        status: r.observed.status,
        lifecycle: r.lifecycle === 'absent' ? 'live' : r.lifecycle,
        mountId: r.observed.mountId,
        privateDirs: [...r.made.privdirs.keys()].sort(),
        problems: [...r.problems.values()],
        problemsLeftOut: r.problemsLeftOut,
      }))
      .sort((a, b) => a.uid - b.uid);
  }

  instances(): { present: string[]; departing: string[] } {
    return { present: [...this.facts.inventory.present].sort(), departing: [...this.facts.inventory.departing.keys()].sort() };
  }

  links(uid: number): LinkView[] {
    return [...(this.ctl.records.get(uid)?.made.links ?? new Map())].map(([target, r]) => ({ target, source: r.source, rule: r.rule, instance: r.instance, kind: r.kind }));
  }

  // ---- start, stop, reload -------------------------------------------------------------------

  /** Starts the sources and resolves once the first full reconcile pass is done. */
  async start(): Promise<void> {
    this.openRoot();
    this.ctl.load();
    this.logind = this.startLogind();
    this.facts.logind = this.logind;
    if (this.logind) {
      // The first pass should know what logind knows; without a bus it goes on after a while.
      let t: NodeJS.Timeout | undefined;
      await Promise.race([this.logind.settled, new Promise<void>((r) => (t = setTimeout(r, this.busSettleMs)))]);
      clearTimeout(t);
    }
    // snapd's first answer, if it comes soon: a snapd that hangs would hold the first pass for
    // its whole timeout (3 s). Without it the snap root is the inventory; snapd's answer, when
    // it comes, is caught up with like any change of it.
    let first: NodeJS.Timeout | undefined;
    await Promise.race([this.snapd.refresh(), new Promise<void>((r) => (first = setTimeout(r, SNAPD_FIRST_ANSWER_MS)))]);
    clearTimeout(first);
    inotifyDoubt.onDoubt((n) => this.eventsMayBeLost(n));
    this.startSources();
    this.snapsDirty = true;
    this.mountsDirty = true;
    this.allDirty = true;
    this.ctl.queue.kick();
    await this.ctl.queue.idle();
  }

  /**
   * The first full process scan (who relies on which rundir), once the daemon has said it is
   * ready: it reads every process (~10 ms here, far more on a busy machine), and neither the
   * private dirs nor READY=1 depend on it. Its slices would otherwise run between the steps
   * that open the status API, delaying the start by as much.
   */
  startDiagnosis(): void {
    this.diag.requestScan();
  }

  /** Resolves when no reconcile work is pending. */
  idle(): Promise<void> {
    return this.ctl.queue.idle();
  }

  async stop(): Promise<void> {
    observeEvents(null);
    if (this.textfileTimer) clearTimeout(this.textfileTimer);
    this.textfileTimer = null;
    this.waiters.stop();
    this.ctl.queue.stop();
    this.diag.stop();
    this.snapd.stop();
    this.logind?.stop();
    this.stopSources();
    if (this.inventoryTimer) clearTimeout(this.inventoryTimer);
    if (this.snapRootRescan) clearTimeout(this.snapRootRescan);
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    inotifyDoubt.onDoubt(null);
    this.ctl.save();
    if (this.rootFd !== null) close(this.rootFd);
    this.rootFd = null;
  }

  /** Takes a new configuration (SIGHUP). Root paths that changed restart the sources. */
  reload(next: Config): void {
    const prev = this.cfg;
    this.cfg = next;
    this.facts.setConfig(next);
    const rootsChanged = prev.runtimeRoot !== next.runtimeRoot || prev.snapRoot !== next.snapRoot || prev.mountinfo !== next.mountinfo;
    if (rootsChanged) {
      this.stopSources();
      if (prev.runtimeRoot !== next.runtimeRoot) {
        // What rundird knew and made belongs to the old tree.
        this.ctl.save(true);
        this.ctl.reset();
        if (this.rootFd !== null) close(this.rootFd);
        this.rootFd = null;
        this.openRoot();
        this.ctl.load();
      }
      this.startSources();
    }
    this.snapsDirty = true;
    this.mountsDirty = true;
    this.allDirty = true;
    this.ctl.queue.kick();
  }

  // ---- global hints --------------------------------------------------------------------------

  /** Turns the global hints (mounts, snaps, "everything") into dirty UIDs. */
  private hints(q: WorkQueue): void {
    if (this.snapsDirty) {
      this.snapsDirty = false;
      if (this.facts.refreshInventory()) this.allDirty = true;
      this.armInventoryTimer();
    }
    if (this.mountsDirty || this.allDirty) {
      const { uids, rootChanged } = this.facts.refreshMounts();
      this.mountsDirty = false;
      if (rootChanged) {
        // Something was mounted over the runtime root itself (or taken off it): every watch and
        // descriptor of the old one is blind to the new.
        logEvent(this.log, 'runtime-root-remounted', { path: this.cfg.runtimeRoot }, `${this.cfg.runtimeRoot}: the mount on it changed; watching it afresh`);
        this.stopSources();
        if (this.rootFd !== null) close(this.rootFd);
        this.openRoot();
        this.startSources();
        this.allDirty = true;
      }
      for (const uid of uids) q.add(uid);
    }
    if (this.allDirty) {
      this.allDirty = false;
      this.ctl.addAll();
    }
  }

  /**
   * So many inotify events came in one turn that the kernel's queue may have overflowed (which
   * loses events, and Node cannot see the overflow itself): read everything again, at most once
   * a second; a doubt meanwhile is a resync when that second is over.
   */
  private eventsMayBeLost(events: number): void {
    if (this.resyncTimer) return;
    const wait = this.lastResync + RESYNC_MIN_INTERVAL_MS - Date.now();
    if (wait > 0) {
      this.resyncTimer = setTimeout(() => {
        this.resyncTimer = null;
        this.resync(events);
      }, wait);
      return;
    }
    this.resync(events);
  }

  private resync(events: number): void {
    const now = Date.now();
    this.lastResync = now;
    this.resyncsUnsaid++;
    if (now - this.lastLostLog >= EVENTS_LOST_LOG_MS) {
      const n = this.resyncsUnsaid;
      logEvent(
        this.log,
        'events-lost',
        { events, threshold: inotifyDoubt.threshold, resyncs: n },
        `${events} inotify events in one turn (the kernel's queue may have overflowed, losing some): reading every rundir, the mount table and the snaps again` + (n > 1 ? ` (${n} such resyncs since the last record)` : ''),
      );
      this.lastLostLog = now;
      this.resyncsUnsaid = 0;
    }
    this.snapsDirty = true;
    this.mountsDirty = true;
    this.allDirty = true;
    this.ctl.queue.kick();
  }

  private armInventoryTimer(): void {
    if (this.inventoryTimer) clearTimeout(this.inventoryTimer);
    this.inventoryTimer = null;
    const next = this.facts.inventory.nextDeadline();
    if (next === null) return;
    this.inventoryTimer = setTimeout(() => {
      this.inventoryTimer = null;
      if (this.facts.expireInventory()) this.allDirty = true;
      this.armInventoryTimer();
      this.ctl.queue.kick();
    }, Math.max(0, next - Date.now()));
  }

  // ---- sources -------------------------------------------------------------------------------

  private openRoot(): void {
    ensureRuntimeRoot(this.cfg.runtimeRoot);
    this.rootFd = openTrustedDir(this.cfg.runtimeRoot);
    this.rootDev = fstat(this.rootFd).dev;
    this.facts.forgetRootMount();
  }

  private startLogind(): Logind | null {
    if (this.busAddress === null) return null;
    const l = new Logind(
      {
        dirty: (uid) => this.ctl.queue.add(uid),
        dirtyAll: () => {
          this.allDirty = true;
          this.ctl.queue.kick();
        },
        note: (uid, event, detail) => {
          this.ctl.note(uid, event, detail);
          this.log.debug({ uid, timeline: event }, detail);
        },
        job: (uid, type) => this.ctl.noteJob(uid, { type, done: false }),
        jobDone: (uid, type) => this.ctl.noteJob(uid, { type, done: true }),
        unitJob: (unit) => this.diag.onUnitJob(unit),
        error: (what, e) => {
          const msg = e instanceof Error ? e.message : String(e);
          if (what === 'bus') {
            if (this.busDown) return; // said once per outage, not per retry
            this.busDown = true;
            // No bus at all (no socket, nobody listening): a plain fact of this machine, said once, not a fault.
            if (!this.busSeen && /ENOENT|ECONNREFUSED|no such file/i.test(msg)) {
              const at = /unix:path=([^,;]+)/.exec(this.busAddress ?? '')?.[1] ?? this.busAddress ?? '';
              logEvent(this.log, 'mode-changed', { mode: 'inotify', reason: 'no-system-bus', bus: at }, `no system bus at ${at}: running in inotify mode (inotify and the mount table); switching to logind mode when a bus with logind appears`);
              return;
            }
          }
          logEvent(this.log, 'bus-error', { source: what, error: msg }, `${what}: ${msg}`);
        },
        presence: (name, present) => {
          if (name !== 'login1') return;
          this.busDown = false;
          this.busSeen = true;
          logEvent(this.log, 'mode-changed', { mode: present ? 'logind' : 'inotify' }, present ? 'logind is on the bus: following it and systemd for the exact state of every rundir' : 'logind is not on the bus: running on inotify and the mount table alone');
        },
      },
      this.busAddress,
    );
    l.start();
    return l;
  }

  /** Sources that fail now, with since when and why (rundirctl status says them, and exits 1). */
  readonly degraded = new Map<string, { since: string; cause: string; meanwhile: string }>();
  private rootWatch: { unsubscribe(): void } | null = null;
  private sourcesStopped = false;
  private rootWatchTimer: NodeJS.Timeout | null = null;
  private rootWatchDelay = ROOT_WATCH_RETRY_MS;

  /**
   * The runtime root's own watch: new rundirs are seen through it. One that cannot be armed (no
   * inotify instance or watch left: EMFILE, ENOSPC) is said once, the whole root is read now and
   * then again at each retry (1 s, doubling to 30 s), and it is armed again when it can be.
   */
  private watchRuntimeRoot(): void {
    const q = this.ctl.queue;
    let failed: Error | null = null;
    let armed = false;
    const sub = watchDir(this.cfg.runtimeRoot).subscribe((e) => {
      if (e.type === 'error') {
        if (!armed) failed = e.error;
        else this.rootWatchFailed(e.error);
        return;
      }
      if (e.type === 'ready') {
        this.allDirty = true;
        return q.kick();
      }
      const uid = parseUid(e.name.split('/')[0]!);
      if (uid !== null) q.add(uid);
    });
    armed = true;
    this.rootWatch = sub;
    if (failed) return this.rootWatchFailed(failed);
    if (this.degraded.delete('runtime-root')) {
      logEvent(this.log, 'source-degraded', { source: 'runtime-root', restored: true }, `${this.cfg.runtimeRoot}: watched again`);
    }
    this.rootWatchDelay = ROOT_WATCH_RETRY_MS;
  }

  private rootWatchFailed(e: Error): void {
    this.rootWatch?.unsubscribe();
    this.rootWatch = null;
    if (!this.degraded.has('runtime-root')) {
      const meanwhile = `read whole every ${ROOT_WATCH_RETRY_MS / 1000} to ${ROOT_WATCH_RETRY_MAX_MS / 1000} s until it can be watched`;
      this.degraded.set('runtime-root', { since: new Date().toISOString(), cause: e.message, meanwhile });
      logEvent(this.log, 'source-degraded', { source: 'runtime-root', error: e.message }, `cannot watch ${this.cfg.runtimeRoot} (${e.message}): new rundirs are found by reading it, ${meanwhile}`);
    }
    // Whatever came meanwhile is found by reading: now, and at each try.
    this.allDirty = true;
    this.ctl.queue.kick();
    if (this.rootWatchTimer || this.sourcesStopped) return;
    this.rootWatchTimer = setTimeout(() => {
      this.rootWatchTimer = null;
      this.watchRuntimeRoot();
    }, this.rootWatchDelay);
    this.rootWatchDelay = Math.min(this.rootWatchDelay * 2, ROOT_WATCH_RETRY_MAX_MS);
  }

  private startSources(): void {
    const { snapRoot, mountinfo } = this.cfg;
    const q = this.ctl.queue;
    this.sourcesStopped = false;
    this.watchRuntimeRoot();
    this.watchSnapRoot(snapRoot);
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
        q.kick();
      }),
    );
  }

  /**
   * The snap mount dir, two levels deep (instances and their `current`). An instance's
   * `current` made right after its directory can come before the watch on that directory
   * exists, and then no event says so: the inventory is read once more a little after the
   * last event (level-triggered: read the world again rather than trust the events).
   */
  private watchSnapRoot(snapRoot: string): void {
    const q = this.ctl.queue;
    this.subs.push(
      watchDir(snapRoot, { depth: 1 }).subscribe((e) => {
        if (e.type === 'error') return this.sourceError('snap-root', e.error);
        this.snapsDirty = true;
        q.kick();
        this.snapd.refreshSoon();
        if (this.snapRootRescan) clearTimeout(this.snapRootRescan);
        this.snapRootRescan = setTimeout(() => {
          this.snapRootRescan = null;
          this.snapsDirty = true;
          q.kick();
        }, SNAP_ROOT_RESCAN_MS);
      }),
    );
  }

  private stopSources(): void {
    for (const s of this.subs.splice(0)) s.unsubscribe();
    this.rootWatch?.unsubscribe();
    this.rootWatch = null;
    if (this.rootWatchTimer) clearTimeout(this.rootWatchTimer);
    this.rootWatchTimer = null;
    this.sourcesStopped = true;
    this.ctl.watches.dropAll();
  }

  private sourceError(source: string, error: Error): void {
    logEvent(this.log, 'source-error', { source, error: error.message }, `${source}: ${error.message}`);
  }
}
