// The work queue: the only place that decides when a UID is synced. Sources add keys; the
// queue merges everything that arrived in one event-loop turn, and each turn syncs keys for at
// most `budgetMs` (so that a burst does not starve other I/O, the API included), and owns the
// rate-limited requeue of a key whose sync found the world changing under it. Like
// client-go's rate-limited workqueue: a key is never in the dirty set twice, a key whose sync
// asks for a retry comes back at once a few times, then with exponential back-off.
//
// Order: first in, first out, except that the few keys that arrived since the last turn go
// first. A login that comes while a burst of a thousand is being worked through is then synced
// in the next turn instead of behind the whole burst. A burst is many arrivals at once and
// gets no precedence; at least one older key is synced every turn, so nothing starves.
export interface QueueOptions {
  /** Keys handed out per event-loop turn, at most. */
  batch: number;
  /** Work per turn: no further key is started once this much time has passed (one at least). */
  budgetMs: number;
  /** Arrivals of one turn that go before the older keys; more than this is a burst. */
  fresh: number;
  /** Immediate retries before backing off. */
  fastRetries: number;
  /** First back-off, doubled per further retry up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_QUEUE: QueueOptions = { batch: 64, budgetMs: 2, fresh: 8, fastRetries: 5, backoffMs: 200, maxBackoffMs: 5000 };

export class WorkQueue {
  private readonly dirty = new Set<number>();
  /** Keys that became dirty since the last turn began, in order; null: more than `fresh` did. */
  private arrivals: number[] | null = [];
  private readonly failures = new Map<number, number>();
  private readonly delayed = new Map<number, NodeJS.Timeout>();
  private readonly idleWaiters: (() => void)[] = [];
  private scheduled = false;
  private stopped = false;

  constructor(
    /** Runs once per turn while anything is pending: `hints()` first, then each key. */
    private readonly work: { hints(): void; hasHints(): boolean; sync(key: number): void; idle(): void; error(key: number | null, e: unknown): void },
    private readonly opts: QueueOptions = DEFAULT_QUEUE,
    private readonly now: () => number = () => performance.now(),
  ) {}

  add(key: number): void {
    if (!this.dirty.has(key)) {
      this.dirty.add(key);
      if (this.arrivals !== null) {
        if (this.arrivals.length < this.opts.fresh) this.arrivals.push(key);
        else this.arrivals = null;
      }
    }
    this.kick();
  }

  /** Something global changed (the caller's hints will say which keys). */
  kick(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    // setImmediate, not a timer: everything that arrived in this turn is merged, and nothing
    // waits while nothing happens.
    setImmediate(() => this.turn());
  }

  /** The key's sync saw the world change under its plan: again, at once or after a back-off. */
  retry(key: number): void {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    if (n <= this.opts.fastRetries) return this.add(key);
    if (this.delayed.has(key) || this.stopped) return;
    const ms = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** (n - this.opts.fastRetries - 1));
    this.delayed.set(
      key,
      setTimeout(() => {
        this.delayed.delete(key);
        this.add(key);
      }, ms),
    );
  }

  /** The key's sync settled: its failure count starts over. */
  forget(key: number): void {
    this.failures.delete(key);
  }

  /** Adds the key after a delay (a deadline the record is waiting for), unless it is due sooner. */
  addAfter(key: number, ms: number): void {
    if (this.delayed.has(key) || this.stopped) return;
    this.delayed.set(
      key,
      setTimeout(() => {
        this.delayed.delete(key);
        this.add(key);
      }, Math.max(0, ms)),
    );
  }

  /** Resolves when nothing is pending. */
  idle(): Promise<void> {
    if (!this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.delayed.values()) clearTimeout(t);
    this.delayed.clear();
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private turn(): void {
    if (this.stopped) return;
    const start = this.now();
    try {
      this.work.hints();
    } catch (e) {
      this.work.error(null, e);
    }
    // Taken after hints(): what hints() marked dirty this turn counts as arrived.
    const fresh = this.arrivals ?? [];
    this.arrivals = [];
    const dirtyAtStart = this.dirty.size;
    let n = 0;
    const run = (key: number): void => {
      this.dirty.delete(key);
      n++;
      try {
        this.work.sync(key);
      } catch (e) {
        // One key's trouble must not stop the others or the daemon.
        this.work.error(key, e);
      }
    };
    const more = () => n < this.opts.batch && this.now() - start < this.opts.budgetMs && !this.stopped;
    for (const key of fresh) if (this.dirty.has(key) && (n === 0 || more())) run(key);
    // At least one older key a turn, whatever the arrivals took. Only keys dirty when the loop
    // began: one that a sync re-adds (a retry) is appended to the set and waits for the next turn.
    const before = dirtyAtStart - n;
    let older = 0;
    for (const key of this.dirty) {
      if (older === before || this.stopped || (older > 0 && !more())) break;
      run(key);
      older++;
    }
    if (this.stopped) return;
    if (this.dirty.size > 0 || this.work.hasHints()) {
      setImmediate(() => this.turn());
      return;
    }
    this.scheduled = false;
    this.work.idle();
    // idle() may have queued more (watches armed, whose 'ready' adds keys): then not idle yet.
    if (this.scheduled) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
