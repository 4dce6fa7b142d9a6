// The restore policy's plan, pure: each rule on its own (the effects check again; these are the first guard).
import { describe, expect, it } from 'vitest';
import { emptyRescue, planRescue, relOfRescueName, rescueName, type RescueSnapshot } from '../../src/reconcile/rescue.js';
import type { NodeStat } from '../../src/world/types.js';

const sock = (ino: number, uid = 0): NodeStat => ({ kind: 'socket', uid, gid: uid, mode: 0o755, ino, dev: 5 });
const dir = (uid = 0): NodeStat => ({ kind: 'dir', uid, gid: uid, mode: 0o700, ino: 77, dev: 9 });

function snap(over: Partial<RescueSnapshot> = {}): RescueSnapshot {
  return {
    uid: 0,
    restore: true,
    canShow: true,
    status: 'plain',
    lifecycle: 'live',
    rundir: { ino: 1, dev: 5 },
    plain: { proof: { ino: 1, dev: 5 }, hidden: false },
    listening: new Set(['wayland-0']),
    serversKnown: true,
    reliant: new Set(['wayland-0']),
    inPlain: new Map([['wayland-0', sock(10)]]),
    kept: new Map(),
    here: new Map(),
    ...over,
  };
}

describe('planRescue', () => {
  it('keeps a live socket of a reliant service, once; again when its server makes it anew', () => {
    expect(planRescue(snap(), emptyRescue())).toEqual([{ op: 'keep', rel: 'wayland-0', ino: 10, replace: false }]);
    expect(planRescue(snap({ kept: new Map([['wayland-0', sock(10)]]) }), emptyRescue())).toEqual([]);
    expect(planRescue(snap({ kept: new Map([['wayland-0', sock(9)]]) }), emptyRescue())).toEqual([{ op: 'keep', rel: 'wayland-0', ino: 10, replace: true }]);
  });

  it('keeps nothing of another UID, nothing that is not a socket, nothing no reliant service holds, nothing not listening', () => {
    expect(planRescue(snap({ inPlain: new Map([['wayland-0', sock(10, 1000)]]) }), emptyRescue())).toEqual([]);
    expect(planRescue(snap({ inPlain: new Map([['wayland-0', { ...sock(10), kind: 'file' }]]) }), emptyRescue())).toEqual([]);
    expect(planRescue(snap({ reliant: new Set() }), emptyRescue())).toEqual([]);
    expect(planRescue(snap({ listening: new Set() }), emptyRescue())).toEqual([]);
    expect(planRescue(snap({ reliant: new Set(['../x']), inPlain: new Map([['../x', sock(3)]]), listening: new Set(['../x']) }), emptyRescue())).toEqual([]);
  });

  it('drops a rescue link whose server is gone, and all when the policy is off', () => {
    const kept = new Map([['wayland-0', sock(10)]]);
    expect(planRescue(snap({ kept, listening: new Set() }), emptyRescue())).toEqual([{ op: 'drop', rel: 'wayland-0', ino: 10, why: 'its server is gone' }]);
    expect(planRescue(snap({ kept, restore: false }), emptyRescue())).toEqual([{ op: 'drop', rel: 'wayland-0', ino: 10, why: 'the restore policy is off' }]);
    // Before any process scan (rundird just restarted) nothing is known to be gone.
    expect(planRescue(snap({ kept, listening: new Set(), serversKnown: false }), emptyRescue())).toEqual([]);
  });

  it('shows a hidden socket in a covering tmpfs only where nothing is, through real dirs of the UID only', () => {
    const kept = new Map([['snap.k/wayland-0', sock(10)]]);
    const base = { kept, status: 'tmpfs' as const, plain: { proof: { ino: 1, dev: 5 }, hidden: true }, listening: new Set(['snap.k/wayland-0']), reliant: new Set<string>() };
    expect(planRescue(snap({ ...base, here: new Map([['snap.k', null], ['snap.k/wayland-0', null]]) }), emptyRescue())).toEqual([{ op: 'show', rel: 'snap.k/wayland-0', mkdirs: ['snap.k'] }]);
    expect(planRescue(snap({ ...base, here: new Map([['snap.k', dir()], ['snap.k/wayland-0', sock(4)]]) }), emptyRescue())).toEqual([]);
    expect(planRescue(snap({ ...base, here: new Map([['snap.k', { ...dir(), kind: 'symlink' }], ['snap.k/wayland-0', null]]) }), emptyRescue())).toEqual([]);
    expect(planRescue(snap({ ...base, here: new Map([['snap.k', dir(1000)], ['snap.k/wayland-0', null]]) }), emptyRescue())).toEqual([]);
    // Not for another UID (the rescue directory is root's alone), not while the session closes.
    expect(planRescue(snap({ ...base, canShow: false, here: new Map([['snap.k', dir()], ['snap.k/wayland-0', null]]) }), emptyRescue())).toEqual([]);
    expect(planRescue(snap({ ...base, lifecycle: 'closing', here: new Map([['snap.k', dir()], ['snap.k/wayland-0', null]]) }), emptyRescue())).toEqual([]);
  });

  it('takes away what it showed when the session closes, only while it is still its symlink', () => {
    const r = emptyRescue();
    r.shown.set('wayland-0', { ino: 50, dev: 9 });
    r.shownDirs.set('d', { ino: 51, dev: 9 });
    const kept = new Map([['wayland-0', sock(10)]]);
    const link: NodeStat = { kind: 'symlink', uid: 0, gid: 0, mode: 0o777, ino: 50, dev: 9 };
    const s = { kept, status: 'tmpfs' as const, lifecycle: 'closing' as const, plain: { proof: { ino: 1, dev: 5 }, hidden: true } };
    expect(planRescue(snap({ ...s, here: new Map([['wayland-0', link]]) }), r)).toEqual([
      { op: 'unshow', rel: 'wayland-0', ino: 50 },
      { op: 'unshow-dir', dir: 'd', ino: 51 },
    ]);
    expect(planRescue(snap({ ...s, here: new Map([['wayland-0', { ...link, ino: 99 }]]) }), r)[0]).toEqual({ op: 'forget-shown', rel: 'wayland-0' });
  });

  it('after the purge (absent, logind done): the rundir made again and each live kept socket put back; not during the purge', () => {
    const kept = new Map([['wayland-0', sock(10)], ['gone-0', sock(11)]]);
    const s = { kept, status: 'absent' as const, rundir: null, plain: null, listening: new Set(['wayland-0']), reliant: new Set<string>(), inPlain: new Map() };
    expect(planRescue(snap({ ...s, lifecycle: 'absent' }), emptyRescue())).toEqual([
      { op: 'drop', rel: 'gone-0', ino: 11, why: 'its server is gone' },
      { op: 'remake' },
      { op: 'restore', rel: 'wayland-0', mkdirs: [] },
    ]);
    expect(planRescue(snap({ ...s, lifecycle: 'stopping' }), emptyRescue()).map((a) => a.op)).toEqual(['drop']);
  });

  it('rescue names round-trip and nothing else is taken for one', () => {
    for (const rel of ['wayland-0', 'snap.k/wayland-0', 'a%b/c%2Fd']) expect(relOfRescueName(rescueName(rel))).toBe(rel);
    for (const n of ['.keep-0123', '..', 'a%2F..%2Fb', '%41', 'x%2F']) expect(relOfRescueName(n)).toBeNull();
  });
});
