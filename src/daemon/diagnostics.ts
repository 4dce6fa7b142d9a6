// Who relies on which rundir, and the warnings that follow. Scans are event-driven: a full scan
// on rundir lifecycle transitions (coalesced: one running, at most one queued), a unit's own
// processes when systemd finishes a job for it, and on demand (rundirctl doctor). Never periodic.
import { readFileSync, readlinkSync } from 'node:fs';
import { lstatBelowRoot, type MountSnapshot } from '../world/read.js';
import { join } from 'node:path';
import { logEvent, type Log } from '../journal/logger.js';
import { diagnose, type CycleFacts, type UidView, type Warning } from '../reconcile/diagnose.js';
import { scanProcs, type ProcRecord } from '../sources/procs.js';
import { placeOf } from '../world/mountinfo.js';
import type { LifecycleState, SessionInfo } from '../world/logind.js';
import { groupReliants, type Reliant } from '../world/reliance.js';
import { parseNetUnix, rundirUidOf } from '../world/procfs.js';
import type { RundirStatus } from '../world/types.js';

export interface DiagHost {
  mode(): 'logind' | 'inotify';
  runtimeRoot(): string;
  /** The mount table as the controller last read it. */
  mounts(): MountSnapshot;
  lifecycle(uid: number): LifecycleState;
  /** null when unknown (no logind). */
  linger(uid: number): boolean | null;
  userName(uid: number): string;
  /** A line for the UID's timeline. */
  note(uid: number, event: string, detail: string): void;
  /** Whether logind knows a session of this UID (false without logind). */
  hasSession?(uid: number): boolean;
  /** The PIDs of a unit (systemd's GetUnitProcesses); null when that cannot be asked. */
  unitPids(unit: string): Promise<number[] | null>;
  /** A warning was raised (said for the first time for its cause): the rescue policies act on it. */
  raised?(w: Warning): void;
  /** An evaluation is done: who relies on what may have changed. */
  evaluated?(): void;
}

export interface DiagOptions {
  procRoot: string;
  selfPid: number;
  /** After a unit started, its processes are looked at again this much later (sockets come after exec). */
  unitSettleMs?: number;
  /** Raised warnings logged per evaluation at most; the rest are summed up in one line. */
  maxRaisedPerPass?: number;
  /**
   * Observe-only (a confined snap): other processes' fds cannot be read, so listening sockets
   * in the kernel's table (network-observe) under a rundir whose user has no session count as
   * relied on by an unknown server outside any session.
   */
  observeOnly?: boolean;
}

const noCycle = (n = 0): CycleFacts => ({ n, closing: null, purged: null, startOverPlain: false });

const PLAIN: ReadonlySet<RundirStatus> = new Set(['plain', 'root-owned', 'foreign-owner']);
const CYCLE_KEY = /^(closing|purged|hidden|missing):(\d+):(\d+)/;

export class Diagnostics {
  private procs = new Map<number, ProcRecord>();
  private readonly cycles = new Map<number, CycleFacts>();
  /** Keys already raised: a warning is said once per cause. */
  private readonly said = new Set<string>();
  private warnings: Warning[] = [];
  private reliantList: Reliant[] = [];
  private scanning: Promise<void> | null = null;
  private scanQueued = false;
  private lastFullScan = 0;
  private evalScheduled = false;
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Last scan's numbers, for status and the benchmark. */
  lastScan: { scanned: number; unreadable: number; otherWorld: number; ms: number; at: string } | null = null;

  /** The daemon's own PID as this proc root sees it (none in a fixture tree, whose PIDs are made up). */
  private readonly skipPid: number | undefined;

  constructor(
    private readonly host: DiagHost,
    private readonly log: Log,
    private readonly opts: DiagOptions,
  ) {
    let self: string | null = null;
    try {
      self = readlinkSync(join(opts.procRoot, 'self'));
    } catch {
      // a fixture tree
    }
    this.skipPid = self === String(opts.selfPid) ? opts.selfPid : undefined;
  }

  current(): Warning[] {
    return this.warnings;
  }

  reliants(): Reliant[] {
    return this.reliantList;
  }

  stop(): void {
    this.stopped = true;
    if (this.laterTimer) clearTimeout(this.laterTimer);
    for (const t of this.timers) clearTimeout(t);
  }

  /** A rundir changed state: update its cycle and look again at who relies on it. */
  onLifecycle(uid: number, prev: LifecycleState, next: LifecycleState, ctx: { status: RundirStatus; session: SessionInfo | null; deadline: string | null }): void {
    let c = this.cycles.get(uid) ?? noCycle();
    // A cycle starts when the rundir comes up after being down; starting over a plain dir that
    // was already there (a kiosk's mkdir) is the same cycle.
    const wasDown = prev === 'absent' || prev === 'closing' || prev === 'stopping';
    if ((next === 'starting' || next === 'live') && wasDown) c = noCycle(c.n + 1);
    if (next === 'starting' && PLAIN.has(ctx.status)) c = { ...c, startOverPlain: true };
    if ((next === 'closing' || next === 'stopping') && !c.closing) c = { ...c, closing: { session: ctx.session, deadline: ctx.deadline } };
    if (next === 'absent' && (prev === 'live' || prev === 'closing' || prev === 'stopping')) c = { ...c, purged: { session: ctx.session, at: new Date().toISOString() } };
    this.cycles.set(uid, c);
    // A rundir about to be covered, closed or gone: look now. One that merely came up (a login,
    // a burst of them) can wait a second, merged: a scan must not hold up making its dirs.
    if (next === 'live') this.requestScanLater();
    else this.requestScan();
  }

  private laterTimer: NodeJS.Timeout | null = null;

  /** A full scan within `ms`, merged with every other request meanwhile. */
  requestScanLater(ms = 1000): void {
    if (this.laterTimer || this.stopped) return;
    this.laterTimer = setTimeout(() => {
      this.laterTimer = null;
      this.requestScan();
    }, ms);
  }

  /** A filesystem was mounted on the rundir: over a plain directory, it hides what was in it. */
  onMounted(uid: number, before: RundirStatus): void {
    if (!PLAIN.has(before)) return;
    this.cycles.set(uid, { ...(this.cycles.get(uid) ?? noCycle()), startOverPlain: true });
    this.requestScan();
  }

  /** systemd finished a job for a unit: look at its processes now and once more a little later. */
  onUnitJob(unit: string): void {
    void this.scanUnit(unit);
    const t = setTimeout(() => {
      this.timers.delete(t);
      void this.scanUnit(unit);
    }, this.opts.unitSettleMs ?? 1000);
    this.timers.add(t);
  }

  /** Coalesced full scan. */
  requestScan(): void {
    if (this.stopped) return;
    if (this.scanning) {
      this.scanQueued = true;
      return;
    }
    this.scanning = this.fullScan().finally(() => {
      this.scanning = null;
      if (this.scanQueued) {
        this.scanQueued = false;
        this.requestScan();
      }
    });
  }

  /** For rundirctl doctor: a scan no older than minAgeMs, then the warnings. */
  async fresh(minAgeMs = 1000): Promise<void> {
    if (Date.now() - this.lastFullScan > minAgeMs) this.requestScan();
    while (this.scanning) await this.scanning;
    this.evaluate();
  }

  /** Something changed on disk (a pass ended): re-check missing paths soon, without scanning. */
  evaluateSoon(): void {
    if (this.evalScheduled || this.stopped) return;
    this.evalScheduled = true;
    setImmediate(() => {
      this.evalScheduled = false;
      this.evaluate();
    });
  }

  /** Where the runtime root lives in rundird's own world (its superblock and path), for telling a container's processes apart. */
  private runtimeRootPlace(): string | null {
    return placeOf(this.host.mounts().top, this.host.runtimeRoot());
  }

  private async fullScan(): Promise<void> {
    try {
      const r = await scanProcs({ procRoot: this.opts.procRoot, runtimeRoot: this.host.runtimeRoot(), skipPid: this.skipPid, runtimeRootPlace: this.runtimeRootPlace() });
      this.procs = new Map(r.procs.map((p) => [p.pid, p]));
      if (this.opts.observeOnly) this.addUnattributedSockets();
      this.lastFullScan = Date.now();
      this.lastScan = { scanned: r.scanned, unreadable: r.unreadable, otherWorld: r.otherWorld, ms: Math.round(r.ms * 10) / 10, at: new Date().toISOString() };
      this.log.debug({ scanned: r.scanned, reliant: r.procs.length, unreadable: r.unreadable, other_world: r.otherWorld, ms: r.ms }, 'process scan');
    } catch (e) {
      logEvent(this.log, 'source-error', { source: 'proc', error: (e as Error).message }, `cannot scan ${this.opts.procRoot}: ${(e as Error).message}`);
    }
    if (!this.stopped) this.evaluate();
  }

  /** Observe-only: listening sockets under the runtime root whose server could not be read. */
  private addUnattributedSockets(): void {
    const known = new Set<string>();
    for (const p of this.procs.values()) for (const s of p.sockets) known.add(s.path);
    let text = '';
    try {
      text = readFileSync(join(this.opts.procRoot, 'net/unix'), 'utf8');
    } catch {
      return; // no network-observe: nothing more to see
    }
    let n = -1;
    for (const e of parseNetUnix(text)) {
      if (!e.listening || known.has(e.path)) continue;
      const uid = rundirUidOf(this.host.runtimeRoot(), e.path);
      if (uid === null || this.host.hasSession?.(uid)) continue;
      known.add(e.path);
      this.procs.set(n--, { pid: 0, comm: 'unknown', uids: [uid], cgroup: null, xdgRuntimeDir: null, snapInstance: null, cwd: null, files: [], sockets: [{ path: e.path, listening: true }], label: `the server of ${e.path}` });
    }
  }

  private async scanUnit(unit: string): Promise<void> {
    if (this.stopped) return;
    const pids = await this.host.unitPids(unit);
    if (pids === null) return this.requestScan();
    try {
      const r = pids.length ? await scanProcs({ procRoot: this.opts.procRoot, runtimeRoot: this.host.runtimeRoot(), pids, skipPid: this.skipPid, runtimeRootPlace: this.runtimeRootPlace() }) : { procs: [] };
      for (const [pid, p] of this.procs) if (p.cgroup?.unit === unit || pids.includes(pid)) this.procs.delete(pid);
      for (const p of r.procs) this.procs.set(p.pid, p);
    } catch (e) {
      logEvent(this.log, 'source-error', { source: 'proc', error: (e as Error).message }, `cannot scan the processes of ${unit}: ${(e as Error).message}`);
    }
    if (!this.stopped) this.evaluate();
  }

  private view(uid: number): UidView {
    return {
      uid,
      path: join(this.host.runtimeRoot(), String(uid)),
      name: this.host.userName(uid),
      lifecycle: this.host.lifecycle(uid),
      linger: this.host.linger(uid),
      cycle: this.cycles.get(uid) ?? noCycle(),
    };
  }

  /** Runs the diagnoser and raises what is new. */
  evaluate(): void {
    const reliants = groupReliants(this.host.runtimeRoot(), [...this.procs.values()]);
    const views = new Map<number, UidView>();
    // Only the rundirs a warning can be about: relied on, or a tmpfs gone over a plain one.
    // (Every rundir that ever came up has a cycle; a view each, after every pass, was the
    // daemon's biggest cost in a burst.)
    const uids = new Set(reliants.map((r) => r.uid));
    for (const [uid, c] of this.cycles) if (c.startOverPlain && !c.purged) uids.add(uid);
    for (const uid of uids) views.set(uid, this.view(uid));
    const missing = new Set<string>();
    // Paths the processes name: walked from the rundir down, never through a symlink or into a
    // mount that could block (a user's FUSE server that never answers would hang the daemon).
    const mounts = this.host.mounts();
    const root = this.host.runtimeRoot();
    for (const r of reliants) {
      for (const p of [...r.xdgRuntimeDirs, ...r.sockets]) {
        try {
          if (lstatBelowRoot(mounts, root, p) === null) missing.add(p);
        } catch {
          // unreadable: not said to be missing
        }
      }
    }
    const now = diagnose({ mode: this.host.mode(), reliants, views, missing });
    const keys = new Set(now.map((w) => w.key));
    const max = this.opts.maxRaisedPerPass ?? 50;
    let raised = 0;
    let held = 0;
    for (const w of now) {
      if (this.said.has(w.key)) continue;
      if (raised >= max) {
        held++; // said on a later evaluation, when it is still true
        continue;
      }
      this.said.add(w.key);
      raised++;
      logEvent(this.log, w.event, { uid: w.uid, path: w.path, unit: w.unit ?? undefined, instance: w.instance ?? undefined, object_pid: w.pid ?? undefined, subject: w.subject, remedy: w.remedy, ...w.fields }, w.message);
      this.host.note(w.uid, w.event, `${w.subject}: ${w.message}`);
      this.host.raised?.(w);
    }
    if (held > 0) this.log.warn({ held }, `${held} more warnings held back; rundirctl doctor lists them all`);
    for (const k of this.said) {
      const m = CYCLE_KEY.exec(k);
      if (m) {
        // A cycle's warnings stay said for that cycle; older cycles are forgotten.
        if (Number(m[3]) < (this.cycles.get(Number(m[2]))?.n ?? 0)) this.said.delete(k);
      } else if (!keys.has(k)) this.said.delete(k); // the cause went away: say it again if it returns
    }
    this.warnings = now;
    this.reliantList = reliants;
    this.host.evaluated?.();
  }
}
