import { describe, expect, it } from 'vitest';
import { parseConnections } from '../../src/world/snapd.js';
import { flockHolder } from '../../src/world/procfs.js';
import { parseMountInfo, parseMountInfoLine, placeOf, topMounts, unescapeMountPath } from '../../src/world/mountinfo.js';
import { fsTypeAt } from '../../src/world/read.js';
import { globToRegExp, instanceOfPrivateDir, parseInstanceName } from '../../src/world/instances.js';
import { Inventory } from '../../src/world/snaps.js';
import { ABSENT, holdWrites, lifecycleEvent, lifecycleState, needsRearm, type Observed } from '../../src/reconcile/lifecycle.js';

const line = (id: number, parent: number, point: string, fs = 'tmpfs') => `${id} ${parent} 0:${id} / ${point} rw,nosuid,nodev,relatime shared:1 - ${fs} ${fs} rw,size=1024k,mode=700,uid=1000,gid=1000`;

describe('mountinfo', () => {
  it('parses a tmpfs line with optional fields', () => {
    const m = parseMountInfoLine(line(42, 25, '/run/user/1000'))!;
    expect(m).toMatchObject({ id: 42, parentId: 25, mountPoint: '/run/user/1000', fsType: 'tmpfs', source: 'tmpfs' });
  });

  it('parses a line without optional fields', () => {
    expect(parseMountInfoLine('22 1 0:5 / /dev rw - devtmpfs udev rw')!.fsType).toBe('devtmpfs');
  });

  it.each([
    ['/run/user/a\\040b', '/run/user/a b'],
    ['/x\\011y\\012z', '/x\ty\nz'],
    ['/back\\134slash', '/back\\slash'],
    ['/plain', '/plain'],
  ])('unescapes %s', (raw, want) => {
    expect(unescapeMountPath(raw)).toBe(want);
    expect(parseMountInfoLine(`1 0 0:1 / ${raw} rw - tmpfs t rw`)!.mountPoint).toBe(want);
  });

  it('keeps the good lines and reports the bad ones', () => {
    const t = parseMountInfo([line(1, 0, '/'), 'garbage line', 'x y 0:1 / /p rw - tmpfs t rw', '', line(2, 1, '/run')].join('\n'));
    expect(t.mounts.map((m) => m.id)).toEqual([1, 2]);
    expect(t.errors).toHaveLength(2);
  });

  it('finds the mount on top of a stack on one mount point', () => {
    const t = parseMountInfo([line(1, 0, '/'), line(30, 1, '/run/user/0', 'ext4'), line(31, 30, '/run/user/0'), line(29, 1, '/run/user/1000')].join('\n'));
    const top = topMounts(t);
    expect(top.get('/run/user/0')!.id).toBe(31);
    expect(top.get('/run/user/1000')!.id).toBe(29);
  });

  it('says which filesystem a path is on: its nearest mount point', () => {
    const top = topMounts(parseMountInfo([line(1, 0, '/', 'ext4'), line(2, 1, '/run'), line(3, 2, '/run/user/7', 'fuse.sshfs')].join('\n')));
    const at = (p: string) => fsTypeAt({ top, errors: [] }, p);
    expect([at('/run/user/5'), at('/run/user'), at('/run'), at('/run/user/7'), at('/run/user/7/x'), at('/run/user/70'), at('/srv')]).toEqual(['tmpfs', 'tmpfs', 'tmpfs', 'fuse.sshfs', 'fuse.sshfs', 'tmpfs', 'ext4']);
    expect(fsTypeAt({ top: new Map(), errors: [] }, '/run/user/5')).toBeNull();
  });
});

describe('instance names', () => {
  it.each(['firefox', 'hello-world', 'core22', 'ubuntu-frame_kiosk', 'a1', 'xy_0123456789', 'go'])('accepts %s', (n) => {
    expect(parseInstanceName(n)).not.toBeNull();
  });
  it.each(['a', '1234', 'Firefox', '-lead', 'trail-', 'dou--ble', 'a_b_c', 'name_', 'name_UPPER', 'name_01234567890', 'x'.repeat(41), 'sp ace', '../etc', ''])('rejects %j', (n) => {
    expect(parseInstanceName(n)).toBeNull();
  });
  it('checks names that made the old pattern backtrack for hours (40 digits, 24 mixed) at once', () => {
    // Without a timer: the old pattern does not return from these within the test's life.
    expect(parseInstanceName('1'.repeat(40))).toBeNull();
    expect(parseInstanceName('1'.repeat(39) + '-')).toBeNull();
    expect(parseInstanceName('1a'.repeat(12) + '-')).toBeNull();
    expect(parseInstanceName('1'.repeat(39) + 'a')).not.toBeNull();
  });
  it('splits name and key', () => {
    expect(parseInstanceName('ubuntu-frame_kiosk')).toEqual({ instance: 'ubuntu-frame_kiosk', snap: 'ubuntu-frame', key: 'kiosk' });
  });
  it('maps private dir names back to instances', () => {
    expect(instanceOfPrivateDir('snap.firefox')).toBe('firefox');
    expect(instanceOfPrivateDir('snap.../x')).toBeNull();
    expect(instanceOfPrivateDir('wayland-0')).toBeNull();
  });
  it('matches globs literally apart from * and ?', () => {
    expect(globToRegExp('ubuntu-*').test('ubuntu-frame')).toBe(true);
    expect(globToRegExp('a?').test('ab')).toBe(true);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
  });
});

describe('inventory', () => {
  it('holds a vanished instance as departing for the grace period, then removed', () => {
    const inv = new Inventory();
    expect(inv.update(new Set(['a1', 'b2']), 0, 1000)).toBe(true);
    expect(inv.update(new Set(['a1', 'b2']), 10, 1000)).toBe(false);
    expect(inv.update(new Set(['a1']), 100, 1000)).toBe(true);
    expect([...inv.departing.keys()]).toEqual(['b2']);
    expect(inv.nextDeadline()).toBe(1100);
    expect(inv.expire(1099)).toBe(false);
    expect(inv.expire(1100)).toBe(true);
    expect([...inv.removed]).toEqual(['b2']);
  });
  it('brings a refreshed instance back without it ever being removed', () => {
    const inv = new Inventory();
    inv.update(new Set(['a1']), 0, 1000);
    inv.update(new Set(), 1, 1000);
    inv.update(new Set(['a1']), 2, 1000);
    expect(inv.departing.size + inv.removed.size).toBe(0);
    expect(inv.present.has('a1')).toBe(true);
  });
});

describe('lifecycle events', () => {
  const o = (status: Observed['status'], ino: number | null = 1, mountId: number | null = null): Observed => ({ status, ino, mountId });
  it.each([
    [ABSENT, o('plain'), 'rundir-appeared'],
    [ABSENT, o('root-owned'), 'rundir-appeared'],
    [o('root-owned'), o('tmpfs', 2, 40), 'rundir-mounted'],
    [o('plain'), o('tmpfs', 2, 40), 'rundir-mounted'],
    [o('tmpfs', 2, 40), o('plain'), 'rundir-unmounted'],
    [o('tmpfs', 2, 40), o('tmpfs', 3, 41), 'rundir-replaced'],
    [o('plain'), o('plain', 5), 'rundir-replaced'],
    [o('plain'), ABSENT, 'rundir-removed'],
    [ABSENT, o('symlink'), 'rundir-refused'],
    [o('symlink'), o('plain', 2), 'rundir-appeared'],
    [o('root-owned'), o('plain'), 'rundir-appeared'],
    [o('plain'), o('plain'), null],
  ] as const)('%j → %j: %s', (prev, next, want) => {
    expect(lifecycleEvent(prev, next)).toBe(want);
  });
  it('re-arms when the inode or the mount changes', () => {
    expect(needsRearm(o('plain'), o('tmpfs', 1, 40))).toBe(true);
    expect(needsRearm(o('plain'), o('plain'))).toBe(false);
  });
});

describe('lifecycle state', () => {
  const user = (state: string) => ({ uid: 1000, state, linger: false, sessions: [] });
  it.each([
    ['absent', { logind: true, user: null, job: null }, 'absent'],
    ['plain', { logind: true, user: user('active'), job: 'start' }, 'starting'],
    ['tmpfs', { logind: true, user: user('active'), job: null }, 'live'],
    ['tmpfs', { logind: true, user: user('closing'), job: null }, 'closing'],
    ['tmpfs', { logind: true, user: user('closing'), job: 'stop' }, 'stopping'],
    ['tmpfs', { logind: true, user: null, job: 'stop' }, 'stopping'], // systemd < 256: UserRemoved first
    ['root-owned', { logind: true, user: user('active'), job: null }, 'starting'], // elogind-like
    ['plain', { logind: false, user: null, job: null }, 'live'], // no logind: a kiosk's own dir
  ] as const)('%s with %j is %s', (status, facts, want) => {
    expect(lifecycleState(status, facts as never)).toBe(want);
  });
  it('reads a root-owned rundir as starting, or as stopping once it was closing (a purge unmounted it)', () => {
    const f = { logind: true, user: null, job: null } as const;
    expect(lifecycleState('root-owned', f)).toBe('starting');
    expect(lifecycleState('root-owned', f, 'closing')).toBe('stopping');
    expect(lifecycleState('root-owned', f, 'stopping')).toBe('stopping');
    expect(lifecycleState('root-owned', f, 'live')).toBe('starting');
  });
  it('holds writes over a plain dir with a queued start, and during a purge, not in a mounted one', () => {
    expect(holdWrites('starting', 'plain')).toBe(true);
    expect(holdWrites('starting', 'tmpfs')).toBe(false);
    expect(holdWrites('stopping', 'tmpfs')).toBe(true);
    expect(holdWrites('live', 'plain')).toBe(false);
  });
});

describe("snapd's connections", () => {
  const conn = (ps: string, p: string, ss: string, s: string, i: string) => ({ plug: { snap: ps, plug: p }, slot: { snap: ss, slot: s }, interface: i });
  it('entitle by interface only: a plug named after an interface, on another one, counts as its interface', () => {
    const { plugs, slots } = parseConnections({
      type: 'sync',
      result: {
        established: [
          // A publisher names its network plugs "pipewire" and "desktop" (issue 25).
          conn('netpw', 'pipewire', 'snapd', 'network', 'network'),
          conn('netpw', 'desktop', 'snapd', 'network', 'network'),
          // ubuntu-frame's plug "wayplug" is of interface wayland; its slot "wayland" serves a client.
          conn('frame', 'wayplug', 'snapd', 'wayland', 'wayland'),
          conn('client', 'wl', 'frame', 'wayland', 'wayland'),
        ],
      },
    });
    expect([...plugs.get('netpw')!]).toEqual(['network']);
    expect([...plugs.get('frame')!]).toEqual(['wayland']);
    expect([...plugs.get('client')!]).toEqual(['wayland']);
    expect([...slots.get('frame')!]).toEqual(['wayland']);
    expect([...slots.get('snapd')!].sort()).toEqual(['network', 'wayland']);
  });
});

describe('/proc/locks', () => {
  const text = `1: POSIX  ADVISORY  WRITE 977 00:1c:1234 0 EOF
2: FLOCK  ADVISORY  WRITE 4242 00:1a:5678 0 EOF
2: -> FLOCK  ADVISORY  WRITE 4343 00:1a:5678 0 EOF
3: FLOCK  ADVISORY  WRITE 55 fd:01:5678 0 EOF
`;
  it("names the PID holding a flock on an inode (the holder's line, not a waiter's)", () => {
    expect(flockHolder(text, 0, 0x1a, 5678)).toBe(4242);
    expect(flockHolder(text, 0xfd, 1, 5678)).toBe(55);
    expect(flockHolder(text, 0, 0x1c, 1234)).toBeNull(); // a POSIX lock is not rundird's
    expect(flockHolder('garbage\n\n', 0, 0x1a, 5678)).toBeNull();
  });
});

describe('where the runtime root lives', () => {
  const line = (id: number, dev: string, root: string, mp: string) => `${id} 1 ${dev} ${root} ${mp} rw shared:1 - tmpfs tmpfs rw\n`;
  it('is the superblock and the path in it, the same through a copy or a bind mount of it', () => {
    const own = topMounts(parseMountInfo(line(30, '8:1', '/', '/') + line(40, '0:55', '/', '/run/user')));
    expect(placeOf(own, '/run/user')).toBe('0:55 /');
    expect(placeOf(own, '/run/user/1000')).toBe('0:55 /1000');
    // A container that bind-mounts the host's /run/user sees the same directory.
    const bound = topMounts(parseMountInfo(line(90, '0:77', '/', '/') + line(91, '0:55', '/', '/run/user')));
    expect(placeOf(bound, '/run/user')).toBe(placeOf(own, '/run/user'));
    // One that bind-mounts a subdirectory of it there sees another.
    const sub = topMounts(parseMountInfo(line(90, '0:77', '/', '/') + line(91, '0:55', '/1000', '/run/user')));
    expect(placeOf(sub, '/run/user')).toBe('0:55 /1000');
    // No tmpfs there: the root filesystem's path.
    expect(placeOf(topMounts(parseMountInfo(line(30, '8:1', '/', '/'))), '/run/user')).toBe('8:1 /run/user');
    expect(placeOf(new Map(), '/run/user')).toBeNull();
  });
});
