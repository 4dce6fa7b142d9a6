// The pure parts of diagnosis: /proc parsers, grouping, the warnings and their keys, journald encoding.
import { describe, expect, it } from 'vitest';
import { parseCgroup, parseEnviron, parseFdTarget, parseNetUnix, parseStatus, rundirUidOf, snapInstanceOf } from '../../src/world/procfs.js';
import { groupReliants } from '../../src/world/reliance.js';
import { diagnose, type CycleFacts, type UidView } from '../../src/reconcile/diagnose.js';
import type { ProcRecord } from '../../src/sources/procs.js';
import { encodeEntry, fieldName, recordToFields } from '../../src/journal/journald.js';
import { DIRS_PER_RECORD, madeRecords } from '../../src/reconcile/settle.js';
import { decodeEntry } from '../helpers/journal.js';
import { parsePasswd } from '../../src/world/passwd.js';

describe('/proc parsers', () => {
  it('reads the unit and the session from cgroup v2, hybrid and kernel threads', () => {
    expect(parseCgroup('0::/user.slice/user-1000.slice/session-3.scope\n')).toEqual({ path: '/user.slice/user-1000.slice/session-3.scope', unit: 'session-3.scope', session: { uid: 1000, id: '3' }, userManagerUid: null });
    const hybrid = '12:pids:/system.slice/kiosk.service\n1:name=systemd:/system.slice/snap.frame.daemon.service\n0::/\n';
    expect(parseCgroup(hybrid)).toMatchObject({ unit: 'snap.frame.daemon.service', session: null, userManagerUid: null });
    // In a container on a hybrid host: name=systemd says "/", the unified line names the unit (issue 25).
    const inContainer = '1:name=systemd:/\n0::/user.slice/user-1000.slice/user@1000.service/session.slice/pipewire.service\n';
    expect(parseCgroup(inContainer)).toMatchObject({ unit: 'pipewire.service', userManagerUid: 1000, session: null });
    const sessionInContainer = '1:name=systemd:/\n0::/user.slice/user-1000.slice/session-4.scope\n';
    expect(parseCgroup(sessionInContainer)).toMatchObject({ unit: 'session-4.scope', session: { uid: 1000, id: '4' } });
    expect(parseCgroup('0::/user.slice/user-0.slice/user@0.service/app.slice/foo.service\n')).toMatchObject({ unit: 'foo.service', userManagerUid: 0, session: null });
    // user@ of one UID under another's slice is not that UID's manager
    expect(parseCgroup('0::/user.slice/user-0.slice/user@1000.service\n')!.userManagerUid).toBeNull();
    expect(parseCgroup('')).toBeNull();
    expect(parseCgroup('garbage\n0::/\n')).toMatchObject({ path: '/', unit: null });
  });

  it('reads status, environ and fd links', () => {
    expect(parseStatus('Name:\tfoo bar\nState:\tS\nUid:\t0\t1\t2\t3\nGid:\t0\t0\t0\t0\nVmSize:\t  100 kB\n')).toEqual({ name: 'foo bar', uids: [0, 1, 2, 3], noUserSpace: false });
    // A kernel thread, as 6.x kernels say it and as older ones leave it (no VmSize): nothing to read, not unreadable.
    expect(parseStatus('Name:\tkthreadd\nUid:\t0\t0\t0\t0\nKthread:\t1\n')!.noUserSpace).toBe(true);
    expect(parseStatus('Name:\tkworker\nUid:\t0\t0\t0\t0\n')!.noUserSpace).toBe(true);
    expect(parseStatus('Name:\tsh\nUid:\t0\t0\t0\t0\nVmSize:\t 10 kB\nKthread:\t0\n')!.noUserSpace).toBe(false);
    expect(parseStatus('Name:\tx\n')).toBeNull();
    const env = Buffer.from('A=1\0XDG_RUNTIME_DIR=/run/user/0/snap.x\0XDG_RUNTIME_DIR=/second\0=bad\0NOEQ\0');
    expect(parseEnviron(env, ['XDG_RUNTIME_DIR', 'MISSING'])).toEqual({ XDG_RUNTIME_DIR: '/run/user/0/snap.x' });
    expect(parseFdTarget('socket:[4242]')).toEqual({ kind: 'socket', inode: 4242 });
    expect(parseFdTarget('/run/user/0/a b (deleted)')).toEqual({ kind: 'path', path: '/run/user/0/a b', deleted: true });
    expect(parseFdTarget('pipe:[1]')).toEqual({ kind: 'other' });
    expect(parseFdTarget('anon_inode:[eventfd]')).toEqual({ kind: 'other' });
  });

  it('reads bound path sockets from /proc/net/unix, listening or not, and skips abstract ones', () => {
    const text = [
      'Num       RefCount Protocol Flags    Type St Inode Path',
      '0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/user/0/wayland-0',
      '0000000000000000: 00000002 00000000 00000000 0002 01 12346 /run/user/0/dgram sock',
      '0000000000000000: 00000002 00000000 00010000 0001 01 12347 @/tmp/.X11-unix/X0',
      '0000000000000000: 00000003 00000000 00000000 0001 03 12348',
      'garbage line',
    ].join('\n');
    expect(parseNetUnix(text)).toEqual([
      { inode: 12345, path: '/run/user/0/wayland-0', listening: true },
      { inode: 12346, path: '/run/user/0/dgram sock', listening: false },
    ]);
  });

  it('names snap instances and the UID of a path', () => {
    expect(snapInstanceOf({ SNAP_INSTANCE_NAME: 'frame_a' }, null)).toBe('frame_a');
    expect(snapInstanceOf({}, 'snap.ubuntu-frame.daemon.service')).toBe('ubuntu-frame');
    expect(snapInstanceOf({}, 'snap.foo_k1.app.service')).toBe('foo_k1');
    expect(snapInstanceOf({}, 'kiosk.service')).toBeNull();
    expect(rundirUidOf('/run/user', '/run/user/0/snap.x')).toBe(0);
    expect(rundirUidOf('/run/user', '/run/user/1000')).toBe(1000);
    expect(rundirUidOf('/run/user', '/run/user')).toBeNull();
    expect(rundirUidOf('/run/user', '/run/users/0')).toBeNull();
    expect(rundirUidOf('/run/user', '/run/user/01')).toBeNull();
  });

  it('maps UIDs to names from passwd, first entry wins', () => {
    const m = parsePasswd('root:x:0:0:root:/root:/bin/bash\nkiosk:x:1000:1000::/home/kiosk:/bin/sh\ntoor:x:0:0::/:/bin/sh\nbad line\n');
    expect(m.get(0)).toBe('root');
    expect(m.get(1000)).toBe('kiosk');
  });
});

const proc = (p: Partial<ProcRecord> & { pid: number }): ProcRecord => ({ comm: 'x', uids: [0, 0, 0, 0], cgroup: null, xdgRuntimeDir: null, snapInstance: null, cwd: null, files: [], sockets: [], ...p });
const unitCg = (unit: string, slice = '/system.slice') => ({ path: `${slice}/${unit}`, unit, session: null, userManagerUid: null });
const cycle = (c: Partial<CycleFacts> = {}): CycleFacts => ({ n: 1, closing: null, purged: null, startOverPlain: false, ...c });
const view = (uid: number, v: Partial<UidView> = {}): UidView => ({ uid, path: `/run/user/${uid}`, name: uid === 0 ? 'root' : `u${uid}`, lifecycle: 'live', linger: false, cycle: cycle(), ...v });

describe('grouping', () => {
  it('groups a unit’s processes into one reliant per rundir, and tells sessions apart', () => {
    const procs = [
      ...Array.from({ length: 1000 }, (_, i) => proc({ pid: 5000 + i, comm: `w${i}`, cgroup: unitCg('kiosk.service'), xdgRuntimeDir: '/run/user/0' })),
      proc({ pid: 10, comm: 'frame', cgroup: unitCg('snap.frame.daemon.service'), xdgRuntimeDir: '/run/user/0/snap.frame', snapInstance: 'frame', sockets: [{ path: '/run/user/0/wayland-0', listening: true }] }),
      proc({ pid: 20, cgroup: { path: '/user.slice/user-0.slice/session-4.scope', unit: 'session-4.scope', session: { uid: 0, id: '4' }, userManagerUid: null }, xdgRuntimeDir: '/run/user/0' }),
      proc({ pid: 30, cgroup: { path: '/user.slice/user-0.slice/session-4.scope', unit: 'session-4.scope', session: { uid: 0, id: '4' }, userManagerUid: null }, files: [{ path: '/run/user/1000/x', deleted: false }] }),
      proc({ pid: 40, comm: 'loose', cwd: '/run/user/0' }),
    ];
    const r = groupReliants('/run/user', procs);
    expect(r.map((x) => [x.uid, x.label, x.inSession, x.pids.length])).toEqual([
      [0, 'kiosk.service', false, 1000],
      [0, 'loose[40]', false, 1],
      [0, 'session-4.scope', true, 1],
      [0, 'snap.frame.daemon.service', false, 1],
      [1000, 'session-4.scope', false, 1], // a root session does not keep UID 1000's rundir
    ]);
    expect(r[0]!.mainPid).toBe(5000);
    expect(r[3]).toMatchObject({ snapInstance: 'frame', sockets: ['/run/user/0/wayland-0'], via: ['env', 'socket'] });
  });
});

describe('diagnose', () => {
  // logind's purge helper holds the rundir open while it removes it: never a reliant.
  expect(groupReliants('/run/user', [proc({ pid: 7, cgroup: unitCg('user-runtime-dir@0.service'), files: [{ path: '/run/user/0/x', deleted: false }] })])[0]!.inSession).toBe(true);
  expect(groupReliants('/run/user', [proc({ pid: 7, cgroup: unitCg('user-runtime-dir@1000.service'), files: [{ path: '/run/user/0/x', deleted: false }] })])[0]!.inSession).toBe(false);
  const frame = groupReliants('/run/user', [proc({ pid: 10, cgroup: unitCg('snap.frame.daemon.service'), xdgRuntimeDir: '/run/user/0/snap.frame', snapInstance: 'frame', sockets: [{ path: '/run/user/0/snap.frame/wayland-0', listening: true }] })]);
  const inSession = groupReliants('/run/user', [proc({ pid: 20, cgroup: { path: '/user.slice/user-0.slice/session-4.scope', unit: 'session-4.scope', session: { uid: 0, id: '4' }, userManagerUid: null }, xdgRuntimeDir: '/run/user/0' })]);
  const session = { id: '7', uid: 0, service: 'sshd', tty: '', remoteHost: '10.0.0.9', class: 'user' };
  const run = (v: UidView, missing: string[] = [], mode: 'logind' | 'inotify' = 'logind', reliants = frame) => diagnose({ mode, reliants, views: new Map([[0, v]]), missing: new Set(missing) });

  it('warns about a service outside any session of a UID that does not linger, with the fixes', () => {
    const [w, ...rest] = run(view(0));
    expect(rest).toEqual([]);
    expect(w).toMatchObject({ event: 'reliant-without-linger', key: 'linger:0:snap.frame.daemon.service', unit: 'snap.frame.daemon.service', pid: 10, instance: 'frame' });
    expect(w!.remedy).toContain('loginctl enable-linger root');
    expect(w!.remedy).toContain('PAMName=login');
    expect(w!.remedy).toContain('$SNAP_COMMON/run');
  });

  it('is quiet for lingering users, for processes inside the session, and without logind', () => {
    expect(run(view(0, { linger: true }))).toEqual([]);
    expect(run(view(0), [], 'logind', inSession)).toEqual([]);
    expect(run(view(0, { linger: null }), [], 'inotify')).toEqual([]);
  });

  it('warns while closing with the session and deadline, keyed to the cycle', () => {
    const ws = run(view(0, { lifecycle: 'closing', cycle: cycle({ n: 3, closing: { session, deadline: '2026-11-23T10:00:10.000Z' } }) }));
    const w = ws.find((x) => x.event === 'rundir-closing-under-services')!;
    expect(w.key).toBe('closing:0:3:snap.frame.daemon.service');
    expect(w.fields).toMatchObject({ session_id: '7', session_service: 'sshd', session_remote_host: '10.0.0.9', deadline: '2026-11-23T10:00:10.000Z' });
    expect(w.message).toContain('session 7 (sshd, from 10.0.0.9)');
  });

  it('after a purge, lists what is gone, and says a missing XDG_RUNTIME_DIR', () => {
    const ws = run(view(0, { lifecycle: 'absent', cycle: cycle({ n: 3, closing: { session, deadline: null }, purged: { session, at: 'now' } }) }), ['/run/user/0/snap.frame/wayland-0', '/run/user/0/snap.frame']);
    expect(ws.map((w) => w.event).sort()).toEqual(['rundir-closing-under-services', 'rundir-purged-under-services', 'runtime-dir-missing']);
    // keyed to the cycle: a plain dir showing for a moment between unmount and removal is no new cause
    expect(ws.find((w) => w.event === 'runtime-dir-missing')!.key).toBe('missing:0:3:snap.frame.daemon.service:/run/user/0/snap.frame');
    expect(ws.find((w) => w.event === 'rundir-purged-under-services')!.fields.gone).toEqual(['/run/user/0/snap.frame/wayland-0', '/run/user/0/snap.frame']);
    // nothing gone → no purge warning (the service only had its cwd elsewhere, say)
    expect(run(view(0, { lifecycle: 'absent', cycle: cycle({ purged: { session: null, at: 'now' } }) })).filter((w) => w.event === 'rundir-purged-under-services')).toEqual([]);
  });

  it('warns once per cycle about sockets a tmpfs start hides, and not about ones made on the tmpfs', () => {
    const v = view(0, { lifecycle: 'starting', linger: false, cycle: cycle({ n: 5, startOverPlain: true }) });
    const w = run(v, ['/run/user/0/snap.frame/wayland-0']).find((x) => x.event === 'sockets-hidden-by-mount')!;
    expect(w.key).toBe('hidden:0:5');
    expect(w.fields.sockets).toEqual(['/run/user/0/snap.frame/wayland-0']);
    expect(w.message).toContain('a tmpfs is being mounted over the plain directory /run/user/0');
    // the server restarted on the tmpfs: its socket is there, nothing is hidden
    expect(run(v).filter((x) => x.event === 'sockets-hidden-by-mount')).toEqual([]);
    // Worded for the moment: mounted (live); not raised once the rundir is closing (the closing warning says what comes).
    const live = run(view(0, { lifecycle: 'live', linger: false, cycle: cycle({ n: 5, startOverPlain: true }) }), ['/run/user/0/snap.frame/wayland-0']).find((x) => x.event === 'sockets-hidden-by-mount')!;
    expect(live.message).toContain('a tmpfs is mounted over the plain directory /run/user/0');
    const closing = run(view(0, { lifecycle: 'closing', linger: false, cycle: cycle({ n: 5, startOverPlain: true }) }), ['/run/user/0/snap.frame/wayland-0']);
    expect(closing.filter((x) => x.event === 'sockets-hidden-by-mount')).toEqual([]);
  });
});

describe('journald native protocol', () => {
  it('maps pino records to journal fields and round-trips multi-line values', () => {
    const rec = { level: 'warn', time: 'x', SYSLOG_IDENTIFIER: 'rundird', event: 'e', MESSAGE_ID: 'abc', PRIORITY: 4, uid: 0, path: '/run/user/0', unit: 'k.service', instance: 'frame', object_pid: 10, remedy: 'one\ntwo', via: ['env'], 'session-id': '3', msg: 'hello' };
    const fields = recordToFields(rec);
    const back = decodeEntry(encodeEntry(fields));
    expect(back).toEqual({ PRIORITY: '4', SYSLOG_IDENTIFIER: 'rundird', RUNDIRD_EVENT: 'e', MESSAGE_ID: 'abc', RUNDIR_UID: '0', RUNDIR_PATH: '/run/user/0', UNIT: 'k.service', SNAP_INSTANCE: 'frame', OBJECT_PID: '10', REMEDY: 'one\ntwo', VIA: '["env"]', SESSION_ID: '3', MESSAGE: 'hello', OBJECT_SYSTEMD_UNIT: 'k.service' });
    expect(recordToFields({ level: 'error', msg: 'x' })[0]).toEqual(['PRIORITY', '3']);
    expect(fieldName('errno')).toBe('RUNDIRD_ERRNO');
    expect(fieldName('_secret')).toBe('RUNDIRD_SECRET');
    expect(fieldName('9lives')).toBe('RUNDIRD_9LIVES');
  });

  it('gives the paths and instances of one record of private dirs as one field each, other lists as JSON', () => {
    const fields = recordToFields({ msg: 'created 2 private dirs', path: ['/run/user/5/snap.a', '/run/user/5/snap.b'], instance: ['a', 'b'], gone: ['/x', '/y'] });
    expect(fields.filter(([n]) => n === 'RUNDIR_PATH')).toEqual([['RUNDIR_PATH', '/run/user/5/snap.a'], ['RUNDIR_PATH', '/run/user/5/snap.b']]);
    expect(fields.filter(([n]) => n === 'SNAP_INSTANCE').map(([, v]) => v)).toEqual(['a', 'b']);
    expect(fields.filter(([n]) => n === 'GONE')).toEqual([['GONE', '["/x","/y"]']]);
    // On the wire: the name repeated, each value whole.
    expect(encodeEntry(fields).toString()).toContain('RUNDIR_PATH=/run/user/5/snap.a\nRUNDIR_PATH=/run/user/5/snap.b\n');
  });
});

describe('records of private dirs made', () => {
  const dir = (i: number) => ({ at: `/run/user/5/snap.s${i}`, instance: `s${i}`, owner: 5, group: 50 });
  it('one record per sync, not per dir; one dir says what it always said', () => {
    const one = madeRecords('/run/user/5', [dir(0)], 'created');
    expect(one).toEqual([{ fields: { path: ['/run/user/5/snap.s0'], instance: ['s0'], owner: 5, group: 50, mode: '0700', count: 1 }, message: 'created /run/user/5/snap.s0' }]);
    const twenty = madeRecords('/run/user/5', Array.from({ length: 20 }, (_, i) => dir(i)), 're-created');
    expect(twenty).toHaveLength(1);
    expect(twenty[0]!.fields.instance).toHaveLength(20);
    expect(twenty[0]!.message).toMatch(/^re-created 20 private dirs in \/run\/user\/5: snap\.s0, snap\.s1, .*snap\.s19$/);
    expect(madeRecords('/run/user/5', [], 'created')).toEqual([]);
  });
  it(`at most ${DIRS_PER_RECORD} dirs a record (journald refuses entries of over 1,024 fields)`, () => {
    const many = madeRecords('/run/user/5', Array.from({ length: 2 * DIRS_PER_RECORD + 1 }, (_, i) => dir(i)), 'created');
    expect(many.map((r) => r.fields.count)).toEqual([DIRS_PER_RECORD, DIRS_PER_RECORD, 1]);
    expect(many.flatMap((r) => r.fields.instance as string[])).toEqual(Array.from({ length: 2 * DIRS_PER_RECORD + 1 }, (_, i) => `s${i}`));
  });
});
