// The work queue's order and bounds, on a clock of its own: each sync takes 1 ms of it.
import { describe, expect, it, vi } from 'vitest';
import { WorkQueue, DEFAULT_QUEUE } from '../../src/controller/queue.js';

function harness(opts: Partial<typeof DEFAULT_QUEUE> = {}, onSync: (key: number, q: WorkQueue) => void = () => {}) {
  let clock = 0;
  const synced: number[] = [];
  const turns: number[][] = [];
  const q: WorkQueue = new WorkQueue(
    {
      hints: () => turns.push([]),
      hasHints: () => false,
      sync: (key) => {
        clock += 1;
        synced.push(key);
        turns.at(-1)!.push(key);
        onSync(key, q);
      },
      idle: () => {},
      error: (_k, e) => {
        throw e;
      },
    },
    { ...DEFAULT_QUEUE, ...opts },
    () => clock,
  );
  return { q, synced, turns };
}

describe('work queue', () => {
  it('syncs each key once, a turn ending when its budget is spent', async () => {
    const { q, synced, turns } = harness({ budgetMs: 4 });
    for (let k = 1; k <= 100; k++) q.add(k);
    q.add(5);
    await q.idle();
    expect([...synced].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    // 1 ms a sync, 4 ms a turn: 4 keys a turn (and one of the oldest), never the 64 of the batch.
    expect(turns.filter((t) => t.length > 0).every((t) => t.length <= 5)).toBe(true);
    expect(turns.length).toBeLessThanOrEqual(25);
  });

  it('first in, first out for keys synced lately', async () => {
    const { q, synced } = harness({ budgetMs: 4 });
    for (let k = 1; k <= 10; k++) q.add(k);
    await q.idle();
    synced.length = 0;
    for (let k = 1; k <= 10; k++) q.add(k);
    await q.idle();
    expect(synced).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  });

  it('a key that arrives during a burst is synced in the next turn, first, even behind the burst in the same read', async () => {
    const { q, turns } = harness({ budgetMs: 4 }, (key, q) => {
      // The burst's tail and a login arrive together while the burst is being worked through.
      if (key === 1000) {
        for (let k = 2000; k < 2500; k++) q.add(k);
        q.add(5000);
      }
    });
    for (let k = 1; k <= 1000; k++) q.add(k);
    await q.idle();
    const turnOfLogin = turns.findIndex((t) => t.includes(5000));
    const turnOfTrigger = turns.findIndex((t) => t.includes(1000));
    expect(turnOfLogin).toBe(turnOfTrigger + 1);
    expect(turns[turnOfLogin]![0]).toBe(5000);
    expect(turns.flat().length).toBe(1501);
  });

  it('a key synced lately gets no precedence: a user flooding their own rundir waits their turn', async () => {
    let floods = 0;
    const { q, turns } = harness({ budgetMs: 4 }, (key, q) => {
      if (key === 7 && floods++ < 20) q.add(7); // every sync of it brings another event
    });
    for (let k = 1; k <= 40; k++) q.add(k);
    await q.idle();
    // Synced once as new, then each time behind everyone else who waits: never twice in a turn
    // nor ahead of keys that were already waiting.
    const firstOf40 = turns.findIndex((t) => t.includes(40));
    const sevens = turns.map((t, i) => (t.includes(7) ? i : -1)).filter((i) => i >= 0);
    expect(sevens.length).toBe(21);
    expect(turns.every((t) => t.filter((k) => k === 7).length <= 1)).toBe(true);
    // Its second sync comes after every key that was waiting when its first one ended.
    const allFirst = Math.max(...Array.from({ length: 40 }, (_, i) => turns.findIndex((t) => t.includes(i + 1))));
    expect(sevens[1]).toBeGreaterThanOrEqual(allFirst);
    expect(firstOf40, "key 40 was synced").not.toBe(-1);
  });

  it('older keys progress even when a new key arrives every turn', async () => {
    let next = 10_000;
    const { q, turns } = harness({ budgetMs: 1, newest: 8 }, (key, q) => {
      // Each arrival brings the next: arrivals alone would fill every turn's budget.
      if ((key === 1 || key >= 10_000) && next < 10_400) q.add(next++);
    });
    for (let k = 1; k <= 50; k++) q.add(k);
    await q.idle();
    const busy = turns.filter((t) => t.some((k) => k >= 10_000));
    expect(busy.length).toBeGreaterThan(50);
    // Every turn syncs at least one older key while any waits: all 50 within the first 50 busy turns.
    const last = turns.findIndex((t) => t.includes(50));
    expect(last).toBeLessThanOrEqual(51);
  });

  it('a key re-added by its own sync (a retry) waits for the next turn', async () => {
    let first = true;
    const { q, turns } = harness({ budgetMs: 100 }, (key, q) => {
      if (key === 1 && first) {
        first = false;
        q.retry(1);
      }
    });
    q.add(1);
    q.add(2);
    await q.idle();
    expect(turns.filter((t) => t.length > 0)).toEqual([[2, 1], [1]]);
  });
});

describe('work queue: deadlines', () => {
  it('a sooner deadline replaces a later back-off (a 1 s snapd hold is not swallowed by a 5 s back-off), and a later one waits for the sooner', async () => {
    vi.useFakeTimers();
    try {
      const { q, synced } = harness({ fastRetries: 0, backoffMs: 5000, maxBackoffMs: 5000 });
      q.retry(7); // backs off 5 s
      q.addAfter(7, 1000); // the hold's deadline: 1 s
      q.addAfter(7, 3000); // later than what is due: changes nothing
      await vi.advanceTimersByTimeAsync(999);
      expect(synced).toEqual([]);
      await vi.advanceTimersByTimeAsync(2);
      expect(synced).toEqual([7]);
      // Nothing else was left pending: no second sync at 3 s or 5 s.
      await vi.advanceTimersByTimeAsync(10_000);
      expect(synced).toEqual([7]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('backs off exponentially after the fast retries, up to the bound', async () => {
    vi.useFakeTimers();
    try {
      const { q, synced } = harness({ fastRetries: 1, backoffMs: 200, maxBackoffMs: 500 });
      q.retry(3); // 1st: at once
      await vi.advanceTimersByTimeAsync(0);
      expect(synced).toEqual([3]);
      // Then 200 ms, doubled, bounded by 500.
      for (const wait of [200, 400, 500, 500]) {
        const before = synced.length;
        q.retry(3);
        await vi.advanceTimersByTimeAsync(wait - 1);
        expect(synced.length, `before ${wait} ms`).toBe(before);
        await vi.advanceTimersByTimeAsync(2);
        expect(synced.length, `after ${wait} ms`).toBe(before + 1);
      }
      q.forget(3);
      q.retry(3); // the count starts over: at once again
      await vi.advanceTimersByTimeAsync(0);
      expect(synced.length).toBe(6);
    } finally {
      vi.useRealTimers();
    }
  });
});
