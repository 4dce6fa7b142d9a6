// The work queue: the only place that decides when a UID is synced. Sources add keys; the
// queue merges everything that arrived in one event-loop turn, and each turn syncs keys for at
// most `budgetMs` (so that a burst does not starve other I/O, the API included), and owns the
// rate-limited requeue of a key whose sync found the world changing under it. Like
// client-go's rate-limited workqueue: a key is never in the dirty set twice, a key whose sync
// asks for a retry comes back at once a few times, then with exponential back-off.
//
// Order: newest first for keys that were not synced lately, then first in, first out. A login
// that comes while a burst of a thousand rundirs is being worked through is synced in the next
// turn instead of behind the burst, even when it arrives in the same read of the inotify queue
// as the burst's tail (newest first under backlog: the "adaptive LIFO" of request queues). A
// key synced in the last second or two (a user flooding their own rundir, a retry) gets no
// precedence and goes to the back, so nobody can buy precedence with events; and every turn
// syncs at least one of the oldest keys, so nothing starves.
export interface QueueOptions {
  /** Keys handed out per event-loop turn, at most. */
  batch: number;
  /** Work per turn: no further key is started once this much time has passed (one at least). */
  budgetMs: number;
  /** Keys not synced lately that are remembered for precedence, newest first (older ones just wait their turn). */
  newest: number;
  /** Immediate retries before backing off. */
  fastRetries: number;
  /** First back-off, doubled per further retry up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_QUEUE: QueueOptions = { batch: 64, budgetMs: 2, newest: 64, fastRetries: 5, backoffMs: 200, maxBackoffMs: 5000 };

/** How long a synced key counts as synced lately (it is then forgotten within twice that). */
const RECENT_MS = 1000;

export class WorkQueue {
  private readonly dirty = new Set<number>();
  /** Keys not synced lately that became dirty, oldest first (the last one goes first); at most `opts.newest`. */
  private newest: number[] = [];
  /** Keys synced lately: this generation and the one before (each RECENT_MS long). */
  private syncedNow = new Set<number>();
  private syncedBefore = new Set<number>();
  private generationStart = 0;
  private readonly failures = new Map<number, number>();
  /** Keys added again later: the timer, and when it is due (wall clock, as the timer's). */
  private readonly delayed = new Map<number, { timer: NodeJS.Timeout; due: number }>();
  private readonly idleWaiters: (() => void)[] = [];
  private scheduled = false;
  private stopped = false;

  /** UIDs waiting to be synced now (for the metrics). */
  get depth(): number {
    return this.dirty.size;
  }

  constructor(
    /** Runs once per turn while anything is pending: `hints()` first, then each key. */
    private readonly work: { hints(): void; hasHints(): boolean; sync(key: number): void; idle(): void; error(key: number | null, e: unknown): void },
    private readonly opts: QueueOptions = DEFAULT_QUEUE,
    private readonly now: () => number = () => performance.now(),
  ) {}

  add(key: number): void {
    if (!this.dirty.has(key)) {
      this.dirty.add(key);
      // Not a key synced lately: it would only push real newcomers out of the short list.
      if (!this.syncedLately(key)) {
        this.newest.push(key);
        if (this.newest.length > this.opts.newest) this.newest.shift();
      }
    }
    this.kick();
  }

  private syncedLately(key: number): boolean {
    return this.syncedNow.has(key) || this.syncedBefore.has(key);
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
    this.addAfter(key, Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** (n - this.opts.fastRetries - 1)));
  }

  /** The key's sync settled: its failure count starts over. */
  forget(key: number): void {
    this.failures.delete(key);
  }

  /**
   * Adds the key after a delay (a deadline the record is waiting for, or a back-off), unless it
   * is due sooner already; a sooner deadline replaces a later one (a 1 s snapd hold is not
   * swallowed by a 5 s back-off).
   */
  addAfter(key: number, ms: number): void {
    if (this.stopped) return;
    const due = Date.now() + Math.max(0, ms);
    const have = this.delayed.get(key);
    if (have && have.due <= due) return;
    if (have) clearTimeout(have.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, Math.max(0, ms));
    this.delayed.set(key, { timer, due });
  }

  /** Resolves when nothing is pending. */
  idle(): Promise<void> {
    if (!this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const d of this.delayed.values()) clearTimeout(d.timer);
    this.delayed.clear();
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private turn(): void {
    if (this.stopped) return;
    const start = this.now();
    if (start - this.generationStart > RECENT_MS) {
      this.syncedBefore = this.syncedNow;
      this.syncedNow = new Set();
      this.generationStart = start;
    }
    try {
      this.work.hints();
    } catch (e) {
      this.work.error(null, e);
    }
    // Taken after hints(): what hints() marked dirty this turn counts as arrived. What is
    // added during this turn's syncs waits for the next.
    const fresh = this.newest;
    this.newest = [];
    const dirtyAtStart = this.dirty.size;
    let n = 0;
    const run = (key: number): void => {
      this.dirty.delete(key);
      this.syncedNow.add(key);
      n++;
      try {
        this.work.sync(key);
      } catch (e) {
        // One key's trouble must not stop the others or the daemon.
        this.work.error(key, e);
      }
    };
    const more = () => n < this.opts.batch && this.now() - start < this.opts.budgetMs && !this.stopped;
    // Still dirty and not synced since it was remembered (the oldest-first loop may have).
    const due = (k: number) => this.dirty.has(k) && !this.syncedLately(k);
    let i = fresh.length - 1;
    for (; i >= 0 && (n === 0 || more()); i--) if (due(fresh[i]!)) run(fresh[i]!);
    const left = fresh.slice(0, i + 1);
    // At least one of the oldest keys a turn, whatever the newest took. Only keys dirty when
    // the loop began: one a sync re-adds (a retry) is appended and waits for the next turn.
    const before = dirtyAtStart - n;
    let older = 0;
    for (const key of this.dirty) {
      if (older >= before || this.stopped || (older > 0 && !more())) break;
      run(key);
      older++;
    }
    if (this.stopped) return;
    // What the budget left of the newest keeps its precedence, behind what arrived meanwhile.
    if (left.length > 0) this.newest = [...left.filter(due), ...this.newest].slice(-this.opts.newest);
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
