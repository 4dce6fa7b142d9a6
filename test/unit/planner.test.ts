import { describe, expect, it } from 'vitest';
import { plan, namesToRead, rundirStatus, type PlanInput } from '../../src/reconcile/planner.js';
import type { NodeStat, RundirActual, CreatedRecord } from '../../src/world/types.js';
import { lifecycleSteps } from '../../src/reconcile/lifecycle.js';
import type { LogindFacts } from '../../src/world/logind.js';

const dir = (o: Partial<NodeStat> = {}): NodeStat => ({ kind: 'dir', uid: 1000, gid: 1000, mode: 0o700, ino: 100, dev: 7, ...o });

function input(o: { node?: NodeStat | null; mount?: RundirActual['mount']; entries?: Record<string, NodeStat | null>; wanted?: string[]; departing?: string[]; removed?: string[]; created?: Record<string, CreatedRecord> } = {}): PlanInput {
  return {
    uid: 1000,
    actual: {
      uid: 1000,
      path: '/run/user/1000',
      node: o.node === undefined ? dir({ ino: 1, gid: 1234 }) : o.node,
      mount: o.mount === undefined ? { id: 50, fsType: 'tmpfs' } : o.mount,
      entries: new Map(Object.entries(o.entries ?? {})),
    },
    wanted: o.wanted ?? [],
    departing: new Set(o.departing ?? []),
    removed: new Set(o.removed ?? []),
    created: new Map(Object.entries(o.created ?? {})),
    selfUid: 0,
  };
}

describe('rundirStatus', () => {
  it.each([
    ['absent', null, null],
    ['tmpfs', dir(), { id: 1, fsType: 'tmpfs' }],
    ['mounted', dir(), { id: 1, fsType: 'ext4' }],
    ['plain', dir(), null],
    ['symlink', dir({ kind: 'symlink' }), null],
    ['not-dir', dir({ kind: 'file' }), null],
    ['root-owned', dir({ uid: 0 }), null],
    ['foreign-owner', dir({ uid: 1001 }), null],
  ] as const)('%s', (want, node, mount) => {
    expect(rundirStatus({ uid: 1000, path: '/x', node, mount, entries: new Map() })).toBe(want);
  });
});

describe('plan: private dirs', () => {
  it('makes a missing private dir with the uid as owner and the rundir group', () => {
    const p = plan(input({ wanted: ['firefox'], entries: { 'snap.firefox': null } }));
    expect(p.actions).toEqual([{ op: 'mkdir', name: 'snap.firefox', instance: 'firefox', owner: 1000, group: 1234, recreate: false }]);
    expect(p.rundir).toEqual({ ino: 1, dev: 7 });
    expect(p.problems).toEqual([]);
  });

  it('marks a re-creation when rundird had made the dir before, and forgets the stale record', () => {
    const p = plan(input({ wanted: ['a1'], entries: { 'snap.a1': null }, created: { 'snap.a1': { ino: 5, dev: 7 } } }));
    expect(p.actions).toEqual([
      { op: 'forget', name: 'snap.a1' },
      { op: 'mkdir', name: 'snap.a1', instance: 'a1', owner: 1000, group: 1234, recreate: true },
    ]);
  });

  it('leaves a correct dir alone', () => {
    const p = plan(input({ wanted: ['a1'], entries: { 'snap.a1': dir({ gid: 1234 }) } }));
    expect(p.actions).toEqual([]);
    expect(p.problems).toEqual([]);
  });

  it.each([
    ['mode', dir({ gid: 1234, mode: 0o755 })],
    ['group', dir({ gid: 0 })],
    ['setgid bit', dir({ gid: 1234, mode: 0o2700 })],
  ])('corrects a wrong %s through a fix action pinned to the inode', (_what, e) => {
    const p = plan(input({ wanted: ['a1'], entries: { 'snap.a1': e } }));
    expect(p.actions).toEqual([{ op: 'fix', name: 'snap.a1', instance: 'a1', ino: 100, dev: 7, owner: 1000, group: 1234, from: { uid: e.uid, gid: e.gid, mode: e.mode } }]);
  });

  it('fixes the owner of its own dir left root-owned by an interrupted create', () => {
    const p = plan(input({ wanted: ['a1'], entries: { 'snap.a1': dir({ uid: 0, gid: 0, ino: 9 }) }, created: { 'snap.a1': { ino: 9, dev: 7 } } }));
    expect(p.actions.map((a) => a.op)).toEqual(['fix']);
  });

  it.each([
    ['symlink', dir({ kind: 'symlink' }), 'privdir-symlink'],
    ['file', dir({ kind: 'file' }), 'privdir-not-dir'],
    ['socket', dir({ kind: 'socket' }), 'privdir-not-dir'],
    ['dir of another uid', dir({ uid: 1001 }), 'privdir-foreign-owner'],
    ['root dir not made by rundird', dir({ uid: 0 }), 'privdir-foreign-owner'],
  ] as const)('refuses a %s and writes nothing', (_what, e, code) => {
    const p = plan(input({ wanted: ['a1'], entries: { 'snap.a1': e } }));
    expect(p.actions).toEqual([]);
    expect(p.problems.map((x) => x.code)).toEqual([code]);
  });

  it.each([
    ['a symlink', dir({ kind: 'symlink' }), 'rundir-symlink'],
    ['a file', dir({ kind: 'file' }), 'rundir-not-dir'],
    ['owned by another user', dir({ uid: 1001 }), 'rundir-foreign-owner'],
  ] as const)('writes nothing into a rundir that is %s', (_what, node, code) => {
    const p = plan(input({ node, wanted: ['a1'], entries: { 'snap.a1': null } }));
    expect(p.actions).toEqual([]);
    expect(p.rundir).toBeNull();
    expect(p.problems.map((x) => x.code)).toEqual([code]);
  });

  it('writes nothing and reports nothing in a root-owned rundir of a user (logind before its mount)', () => {
    const p = plan(input({ node: dir({ uid: 0 }), mount: null, wanted: ['a1'], entries: { 'snap.a1': null } }));
    expect(p).toMatchObject({ status: 'root-owned', actions: [], problems: [] });
  });

  it('forgets every record when the rundir is gone', () => {
    const p = plan(input({ node: null, created: { 'snap.a1': { ino: 1, dev: 1 } } }));
    expect(p.actions).toEqual([{ op: 'forget', name: 'snap.a1' }]);
  });
});

describe('plan: instances that went away', () => {
  it('removes its own dir (same inode) once the instance is no longer wanted', () => {
    const p = plan(input({ entries: { 'snap.a1': dir({ ino: 9 }) }, created: { 'snap.a1': { ino: 9, dev: 7 } }, removed: ['a1'] }));
    expect(p.actions).toEqual([{ op: 'rmdir', name: 'snap.a1', instance: 'a1', ino: 9, dev: 7 }]);
  });

  it('does not touch a departing instance (refresh in progress)', () => {
    const p = plan(input({ entries: { 'snap.a1': null }, created: { 'snap.a1': { ino: 9, dev: 7 } }, departing: ['a1'] }));
    expect(p.actions).toEqual([]);
  });

  it('leaves and reports a dir it did not make', () => {
    const p = plan(input({ entries: { 'snap.a1': dir({ ino: 10 }) }, removed: ['a1'] }));
    expect(p.actions).toEqual([]);
    expect(p.problems.map((x) => x.code)).toEqual(['privdir-left']);
  });

  it('leaves and reports its dir when it was replaced by another inode', () => {
    const p = plan(input({ entries: { 'snap.a1': dir({ ino: 10 }) }, created: { 'snap.a1': { ino: 9, dev: 7 } }, removed: ['a1'] }));
    expect(p.actions).toEqual([{ op: 'forget', name: 'snap.a1' }]);
    expect(p.problems.map((x) => x.code)).toEqual(['privdir-left']);
  });

  it('does not remove a dir with the same inode number on another filesystem', () => {
    const p = plan(input({ entries: { 'snap.a1': dir({ ino: 9, dev: 8 }) }, created: { 'snap.a1': { ino: 9, dev: 7 } }, removed: ['a1'] }));
    expect(p.actions.map((a) => a.op)).toEqual(['forget']);
  });
});

describe('namesToRead', () => {
  it('covers wanted, departing, removed and recorded names once each', () => {
    const n = namesToRead(['a1', 'b2'], new Set(['c3']), new Set(['a1']), new Map([['snap.d4', { ino: 1, dev: 1 }]]));
    expect(n.sort()).toEqual(['snap.a1', 'snap.b2', 'snap.c3', 'snap.d4']);
  });
});

describe('plan: hold', () => {
  it('makes, fixes and removes nothing while held', () => {
    const p = plan({ ...input({ wanted: ['a1', 'b2'], entries: { 'snap.a1': null, 'snap.b2': dir({ mode: 0o755 }), 'snap.c3': dir({ ino: 9 }) }, created: { 'snap.c3': { ino: 9, dev: 7 } }, removed: ['c3'] }), hold: true });
    expect(p.actions).toEqual([]);
  });
});

describe('lifecycle steps', () => {
  const f = (over: Partial<LogindFacts> = {}): LogindFacts => ({ logind: true, user: null, job: null, ...over });
  it('passes through a queued job, and a finished one only if the rundir was not seen past it', () => {
    expect(lifecycleSteps('absent', 'tmpfs', f(), [{ type: 'start', done: false }])).toEqual(['starting', 'live']);
    expect(lifecycleSteps('live', 'tmpfs', f(), [{ type: 'start', done: true }])).toEqual([]);
    expect(lifecycleSteps('live', 'absent', f(), [{ type: 'stop', done: false }])).toEqual(['stopping', 'absent']);
    expect(lifecycleSteps('live', 'tmpfs', f({ job: 'stop' }), [])).toEqual(['stopping']);
  });
  it('under logind, a tmpfs seen with no start job seen has passed through starting; a plain dir has not', () => {
    expect(lifecycleSteps('absent', 'tmpfs', f(), [])).toEqual(['starting', 'live']);
    expect(lifecycleSteps('absent', 'plain', f(), [])).toEqual(['live']);
    expect(lifecycleSteps('absent', 'tmpfs', f({ logind: false }), [])).toEqual(['live']);
  });
  it('closing, with logind’s user gone and no job read: stopping until absent, never live again', () => {
    expect(lifecycleSteps('closing', 'tmpfs', f(), [])).toEqual(['stopping']);
    expect(lifecycleSteps('stopping', 'plain', f(), [])).toEqual([]);
    expect(lifecycleSteps('stopping', 'absent', f(), [])).toEqual(['absent']);
    // The purge over before its stop job could be read: it was still the purge.
    expect(lifecycleSteps('closing', 'absent', f(), [])).toEqual(['stopping', 'absent']);
    expect(lifecycleSteps('closing', 'absent', f(), [{ type: 'stop', done: true }])).toEqual(['stopping', 'absent']);
    expect(lifecycleSteps('closing', 'absent', f({ logind: false }), [])).toEqual(['absent']);
    const user = { uid: 0, state: 'active', linger: false, sessions: ['c3'] };
    expect(lifecycleSteps('closing', 'tmpfs', f({ user }), [])).toEqual(['live']); // a new login
  });
  it('user-runtime-dir@ known stopped: a rundir here is live, whatever logind’s user says; a stop of it purged nothing', () => {
    const closing = { uid: 0, state: 'closing', linger: false, sessions: [] };
    // A restarted logind still holds the user it will collect; a service made the dir after the purge.
    expect(lifecycleSteps('absent', 'plain', f({ user: closing, runtimeUnit: 'inactive' }), [])).toEqual(['live']);
    expect(lifecycleSteps('absent', 'plain', f({ user: closing, runtimeUnit: 'active' }), [])).toEqual(['closing']);
    expect(lifecycleSteps('absent', 'plain', f({ user: closing }), [])).toEqual(['closing']);
    // Collected: its stop (over before it could be read) and UserRemoved. Never stuck in stopping.
    expect(lifecycleSteps('live', 'plain', f({ runtimeUnit: 'inactive' }), [{ type: 'stop', done: true }])).toEqual([]);
    expect(lifecycleSteps('stopping', 'plain', f({ runtimeUnit: 'inactive' }), [])).toEqual(['live']);
    // The purge itself: its stop is a step, and the rundir goes.
    expect(lifecycleSteps('closing', 'absent', f({ runtimeUnit: 'inactive' }), [{ type: 'stop', done: true }])).toEqual(['stopping', 'absent']);
    expect(lifecycleSteps('live', 'tmpfs', f({ job: 'stop' }), [{ type: 'stop', done: false }])).toEqual(['stopping']);
  });
});
