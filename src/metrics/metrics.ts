// Prometheus metrics (prom-client), named by Prometheus' rules: the rundird_ prefix, base units,
// _total for counters. Counters follow the records rundird journals (one observer on logEvent:
// what is said is what is counted); gauges are read from the daemon when scraped, so that
// nothing runs while nobody asks. UID is no label by default: thousands of UIDs would be
// thousands of series (`metrics-uid-labels: true` for a small device, docs/fleet.md).
// prom-client is loaded after the first pass (activate()): what comes before is kept and
// counted then, so that a start does not wait for it (~7 ms of a ~140 ms start).
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';

type Prom = typeof import('prom-client');

/** What the gauges read from the daemon at each scrape. */
export interface MetricsSource {
  /** Lifecycle state of each rundir (absent, starting, live, closing, stopping). */
  lifecycles(): Iterable<{ uid: number; state: string }>;
  queueDepth(): number;
  problems(): number;
  warningsInForce(): number;
  watches(): number;
  /** Sources that fail now. */
  degraded(): number;
}

/** Each fields' `path` is one dir or a list of them (one record for many dirs). */
const countOf = (fields: Record<string, unknown>): number => (Array.isArray(fields.path) ? fields.path.length : 1);

const WARNINGS = new Set(['reliant-without-linger', 'rundir-closing-under-services', 'sockets-hidden-by-mount', 'rundir-purged-under-services', 'runtime-dir-missing']);
const PRIVDIR_ACTION: Record<string, string> = { 'privdir-created': 'made', 'privdir-recreated': 'remade', 'privdir-corrected': 'fixed', 'privdir-removed': 'removed', 'privdir-leftover-removed': 'leftover_removed' };
const LINK_ACTION: Record<string, string> = { 'link-created': 'made', 'link-replaced': 'replaced', 'link-refused': 'refused', 'link-removed': 'removed' };

/** The metrics, once prom-client is loaded. */
class Live {
  readonly registry: Registry;
  readonly events: Counter<'event'>;
  readonly privdirs: Counter<string>;
  readonly links: Counter<string>;
  readonly warnings: Counter<string>;
  readonly purges: Counter;
  readonly reliantPurges: Counter;
  readonly rescues: Counter<'step'>;
  readonly resyncs: Counter;
  readonly syncs: Histogram;

  constructor(
    { Counter, Gauge, Histogram, Registry }: Prom,
    private readonly source: MetricsSource,
    private readonly uidLabels: boolean,
  ) {
    this.registry = new Registry();
    const r = [this.registry];
    const uid = this.uidLabels ? ['uid'] : [];
    this.events = new Counter({ name: 'rundird_events_total', help: 'Records rundird journaled, by event (RUNDIRD_EVENT).', labelNames: ['event'], registers: r });
    this.privdirs = new Counter({ name: 'rundird_private_dirs_total', help: 'Snap private directories made, made again, fixed and removed.', labelNames: ['action', ...uid], registers: r });
    this.links = new Counter({ name: 'rundird_links_total', help: 'Socket links made, replaced, refused and removed, by rule.', labelNames: ['action', 'rule', ...uid], registers: r });
    this.warnings = new Counter({ name: 'rundird_warnings_total', help: 'Warnings raised about services relying on a rundir, by event.', labelNames: ['event', ...uid], registers: r });
    this.purges = new Counter({ name: 'rundird_purges_total', help: 'Rundirs removed by logind after their last session (a purge).', registers: r });
    this.reliantPurges = new Counter({ name: 'rundird_purges_under_services_total', help: 'Purges of a rundir that services outside any session relied on (the rest of rundird_purges_total had none).', registers: r });
    this.rescues = new Counter({ name: 'rundird_rescues_total', help: 'Kiosk rescue steps: kept, shown, restored, lingered, dropped.', labelNames: ['step'], registers: r });
    this.resyncs = new Counter({ name: 'rundird_lost_event_resyncs_total', help: 'Full resyncs after inotify events may have been lost.', registers: r });
    this.syncs = new Histogram({ name: 'rundird_sync_duration_seconds', help: 'Time of one sync(uid): read, plan, apply, settle, journal.', buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1], registers: r });
    const src = this.source;
    new Gauge({
      name: 'rundird_rundirs',
      help: 'Rundirs by lifecycle state.',
      labelNames: ['state'],
      registers: r,
      collect() {
        this.reset();
        for (const s of ['absent', 'starting', 'live', 'closing', 'stopping']) this.set({ state: s }, 0);
        const n = new Map<string, number>();
        for (const l of src.lifecycles()) n.set(l.state, (n.get(l.state) ?? 0) + 1);
        for (const [state, v] of n) this.set({ state }, v);
      },
    });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: r,
        collect() {
          this.set(read());
        },
      });
    gauge('rundird_queue_depth', 'UIDs waiting to be synced.', () => src.queueDepth());
    gauge('rundird_problems', 'Problems in force: entries rundird left alone (not safe to write, not its own).', () => src.problems());
    gauge('rundird_warnings_in_force', 'Warnings in force about services relying on a rundir.', () => src.warningsInForce());
    gauge('rundird_watches', 'Directories watched with inotify.', () => src.watches());
    gauge('rundird_degraded_sources', 'Event sources that fail now (rundirctl status says which).', () => src.degraded());
    // The process, read when scraped (prom-client's own default metrics keep an event-loop
    // monitor running, a wake-up every few milliseconds of an idle daemon).
    gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', () => process.memoryUsage.rss());
    gauge('nodejs_heap_size_used_bytes', 'V8 heap in use, in bytes.', () => process.memoryUsage().heapUsed);
    new Counter({
      name: 'process_cpu_seconds_total',
      help: 'User and system CPU time spent, in seconds.',
      registers: r,
      collect() {
        const u = process.cpuUsage();
        this.reset();
        this.inc((u.user + u.system) / 1e6);
      },
    });
    gauge('process_start_time_seconds', 'Start time of the process since the epoch, in seconds.', () => Math.round(Date.now() / 1000 - process.uptime()));
  }

  /** One journaled record. */
  observe(event: string, fields: Record<string, unknown>): void {
    this.events.inc({ event });
    const uid = this.uidLabels && fields.uid !== undefined ? { uid: String(fields.uid) } : {};
    const pd = PRIVDIR_ACTION[event];
    if (pd) this.privdirs.inc({ action: pd, ...uid }, countOf(fields));
    const la = LINK_ACTION[event];
    if (la) this.links.inc({ action: la, rule: String(fields.rule ?? ''), ...uid });
    if (WARNINGS.has(event)) this.warnings.inc({ event, ...uid });
    if (event === 'rundir-state' && fields.previous === 'stopping' && fields.state === 'absent') this.purges.inc();
    if (event === 'rundir-purged-under-services') this.reliantPurges.inc();
    if (event.startsWith('rescue-')) this.rescues.inc({ step: event.slice('rescue-'.length) });
    if (event === 'events-lost') this.resyncs.inc();
  }
}

/** At most this many observations wait for prom-client (a start with 10,000 rundirs). */
const MAX_PENDING = 100_000;

export class Metrics {
  private live: Live | null = null;
  private loading: Promise<Live> | null = null;
  private pending: ({ event: string; fields: Record<string, unknown> } | number)[] = [];
  private changed = false;

  constructor(
    private readonly source: MetricsSource,
    private readonly uidLabels = false,
  ) {}

  /** Loads prom-client and counts what came before (after the first pass; at the first scrape at the latest). */
  activate(): Promise<Live> {
    this.loading ??= import('prom-client').then((prom) => {
      const live = new Live(prom, this.source, this.uidLabels);
      for (const p of this.pending) typeof p === 'number' ? live.syncs.observe(p) : live.observe(p.event, p.fields);
      this.pending = [];
      return (this.live = live);
    });
    return this.loading;
  }

  /** One journaled record (logEvent's observer). */
  observe(event: string, fields: Record<string, unknown>): void {
    this.changed = true;
    if (this.live) this.live.observe(event, fields);
    else if (this.pending.length < MAX_PENDING) this.pending.push({ event, fields });
  }

  /** The time of one sync, in seconds. */
  observeSync(seconds: number): void {
    if (this.live) this.live.syncs.observe(seconds);
    else if (this.pending.length < MAX_PENDING) this.pending.push(seconds);
  }

  /** Whether something was counted since the last call (for the textfile's writer). */
  takeChanged(): boolean {
    const c = this.changed;
    this.changed = false;
    return c;
  }

  async text(): Promise<string> {
    return (await this.activate()).registry.metrics();
  }

  /** Prometheus' text format, version 0.0.4 (prom-client's Registry.PROMETHEUS_CONTENT_TYPE). */
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
}
