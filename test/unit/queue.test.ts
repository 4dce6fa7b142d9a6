// The work queue's order and bounds, on a clock of its own: each sync takes 1 ms of it.
import { describe, expect, it } from 'vitest';
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
  it('syncs a burst first in, first out, each key once, a turn ending when its budget is spent', async () => {
    const { q, synced, turns } = harness({ budgetMs: 4 });
    for (let k = 1; k <= 100; k++) q.add(k);
    q.add(5);
    await q.idle();
    expect(synced).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    // 1 ms a sync, 4 ms a turn: 4 keys a turn, never the 64 of the batch.
    expect(turns.filter((t) => t.length > 0).every((t) => t.length <= 4)).toBe(true);
    expect(turns.length).toBe(25);
  });

  it('a key that arrives alone during a burst is synced in the next turn, not behind the burst', async () => {
    const { q, synced, turns } = harness({ budgetMs: 4 }, (key, q) => {
      if (key === 10) q.add(5000); // a login, while 990 of the burst still wait
    });
    for (let k = 1; k <= 1000; k++) q.add(k);
    await q.idle();
    const turnOfLogin = turns.findIndex((t) => t.includes(5000));
    const turnOf10 = turns.findIndex((t) => t.includes(10));
    expect(turnOfLogin).toBe(turnOf10 + 1);
    expect(turns[turnOfLogin]![0]).toBe(5000);
    expect(synced.length).toBe(1001);
  });

  it('many arrivals at once are a burst: no precedence over what waits', async () => {
    const { q, synced } = harness({ budgetMs: 4, fresh: 8 }, (key, q) => {
      if (key === 1) for (let k = 100; k < 120; k++) q.add(k);
    });
    for (let k = 1; k <= 10; k++) q.add(k);
    await q.idle();
    expect(synced).toEqual([...Array.from({ length: 10 }, (_, i) => i + 1), ...Array.from({ length: 20 }, (_, i) => 100 + i)]);
  });

  it('older keys progress even when a new key arrives every turn', async () => {
    let next = 10_000;
    const { q, turns } = harness({ budgetMs: 1, fresh: 8 }, (key, q) => {
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
    expect(turns.filter((t) => t.length > 0)).toEqual([[1, 2], [1]]);
  });
});
