// Classification through a fixture proc tree (sessions, user managers, snap services, kernel
// threads), the journal fields of a snap daemon's warning, and no flood from thousands of processes.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENTS } from '../../src/journal/events.js';
import { scanProcs } from '../../src/sources/procs.js';
import { parseMountInfo, placeOf, topMounts } from '../../src/world/mountinfo.js';
import { JournalReceiver } from '../helpers/journal.js';
import { ProcFixture } from '../helpers/procfs.js';
import { runCtl } from '../helpers/ctl.js';
import { DaemonProcess, Sandbox, USER } from '../helpers/sandbox.js';

let sb: Sandbox;
let journal: JournalReceiver;
let fx: ProcFixture;
let fxBase: string;
let d: DaemonProcess | null = null;

beforeEach(() => {
  sb = new Sandbox();
  journal = new JournalReceiver(sb.base);
  // On tmpfs when there is one: 10,000 small files on a disk filesystem take seconds to make.
  fxBase = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : sb.base, 'rundird-proc-'));
  fx = new ProcFixture(fxBase);
});
afterEach(async () => {
  await d?.stop();
  d = null;
  journal.close();
  rmSync(fxBase, { recursive: true, force: true });
  sb.cleanup();
});

const ctl = (args: string[]) => runCtl(['--api-socket', join(sb.base, 'api.sock'), ...args]);

describe('who relies on which rundir, from a fixture proc tree', () => {
  it("leaves out another container's processes: a mount namespace whose runtime root is another directory", async () => {
    const root = sb.runtimeRoot;
    const rd = sb.rundir(USER);
    // rundird's own table: the runtime root on a tmpfs (0:55); a container's own: on another (0:99).
    const line = (id: number, dev: string, mp: string, fs = 'tmpfs') => `${id} 1 ${dev} / ${mp} rw,nosuid shared:${id} - ${fs} ${fs} rw\n`;
    const host = line(30, '8:1', '/', 'ext4') + line(40, '0:55', root);
    const sandboxed = line(130, '8:1', '/', 'ext4') + line(140, '0:55', root); // copies: other ids, same superblocks
    const container = line(230, '0:98', '/', 'overlay') + line(240, '0:99', root);
    fx.add({ pid: 100, cgroup: '/system.slice/kiosk.service', env: { XDG_RUNTIME_DIR: rd }, mntns: 'mnt:[1]', mountinfo: host });
    fx.add({ pid: 110, cgroup: '/system.slice/sandboxed.service', env: { XDG_RUNTIME_DIR: rd }, mntns: 'mnt:[2]', mountinfo: sandboxed });
    fx.add({ pid: 200, cgroup: '/init.scope', env: { XDG_RUNTIME_DIR: rd }, mntns: 'mnt:[3]', mountinfo: container, fds: { 3: `${rd}/bus` } });
    fx.add({ pid: 210, cgroup: '/system.slice/e2e-kiosk.service', env: { XDG_RUNTIME_DIR: `${rd}/snap.kiosk` }, mntns: 'mnt:[3]', mountinfo: container });
    fx.add({ pid: 300, cgroup: '/system.slice/old.service', env: { XDG_RUNTIME_DIR: rd }, mntns: 'mnt:[4]' }); // its table unreadable: taken as the host's
    const place = placeOf(topMounts(parseMountInfo(host)), root);
    const r = await scanProcs({ procRoot: fxBase, runtimeRoot: root, runtimeRootPlace: place });
    expect(r.procs.map((p) => p.pid).sort()).toEqual([100, 110, 300]);
    expect(r.otherWorld).toBe(2);
    // Without a place to compare with (an older caller), nobody is left out.
    expect((await scanProcs({ procRoot: fxBase, runtimeRoot: root })).procs.map((p) => p.pid).sort()).toEqual([100, 110, 200, 210, 300]);
  });

  it('tells sessions, user managers and system services apart, reads sockets by inode, skips kernel threads', async () => {
    const rd = sb.rundir(USER);
    fx.add({ pid: 100, cgroup: `/user.slice/user-${USER}.slice/session-3.scope`, env: { XDG_RUNTIME_DIR: rd } });
    fx.add({ pid: 200, comm: 'frame', cgroup: '/system.slice/snap.frame.daemon.service', env: { XDG_RUNTIME_DIR: `${rd}/snap.frame`, SNAP_INSTANCE_NAME: 'frame' }, fds: { 0: '/dev/null', 3: 'socket:[777]', 4: 'pipe:[9]' } });
    fx.add({ pid: 300, cgroup: `/user.slice/user-${USER}.slice/user@${USER}.service/app.slice/foo.service`, cwd: rd });
    fx.add({ pid: 400, comm: 'kthreadd' });
    fx.add({ pid: 500, cgroup: '/system.slice/other.service', env: { XDG_RUNTIME_DIR: '/run/user/elsewhere' }, fds: { 5: `${rd}/log (deleted)` } });
    fx.socket(777, `${rd}/snap.frame/wayland-0`, true, [200]);
    fx.socket(778, `${rd}/unrelated`, true, [200]);
    const r = await scanProcs({ procRoot: fx.root, runtimeRoot: sb.runtimeRoot });
    expect(r.scanned).toBe(5);
    // The kernel thread has nothing to read: not counted as a process that could not be read.
    expect(r.unreadable).toBe(0);
    const byPid = new Map(r.procs.map((p) => [p.pid, p]));
    expect([...byPid.keys()].sort()).toEqual([100, 200, 300, 500]);
    expect(byPid.get(200)).toMatchObject({ snapInstance: 'frame', sockets: [{ path: `${rd}/snap.frame/wayland-0`, listening: true }], cgroup: { unit: 'snap.frame.daemon.service' } });
    expect(byPid.get(300)).toMatchObject({ cwd: rd, cgroup: { userManagerUid: USER } });
    expect(byPid.get(500)).toMatchObject({ xdgRuntimeDir: '/run/user/elsewhere', files: [{ path: `${rd}/log`, deleted: true }] });
    // Only the given PIDs when a unit is scanned.
    expect((await scanProcs({ procRoot: fx.root, runtimeRoot: sb.runtimeRoot, pids: [200, 999] })).procs.map((p) => p.pid)).toEqual([200]);
  });

  it('reads the socket table of a namespace through a process still there: the first one read has exited, and /proc/net is hidden', async () => {
    const rd = sb.rundir(USER);
    // A login's short-lived helper, lowest PID with a socket, gone by the time tables are read.
    fx.add({ pid: 150, comm: 'systemd-run', cgroup: '/system.slice/run-u7.service', fds: { 3: 'socket:[555]' } });
    fx.add({ pid: 200, comm: 'kiosk', cgroup: '/system.slice/kiosk.service', fds: { 3: 'socket:[777]' } });
    // Another namespace: its own table.
    fx.add({ pid: 300, comm: 'other', cgroup: '/system.slice/other.service', fds: { 3: 'socket:[888]' }, netns: 'net:[4026532000]' });
    fx.socket(777, `${rd}/snap.kiosk/wayland-0`, true, [200]);
    fx.socket(888, `${rd}/other-0`, true, [300]);
    rmSync(join(fx.root, '150/net/unix'), { force: true });
    // rundird's own /proc/net: hidden by ProcSubset=pid (and its own namespace's under PrivateNetwork=).
    rmSync(join(fx.root, 'net/unix'));
    const r = await scanProcs({ procRoot: fx.root, runtimeRoot: sb.runtimeRoot });
    const byPid = new Map(r.procs.map((p) => [p.pid, p]));
    expect(byPid.get(200)?.sockets).toEqual([{ path: `${rd}/snap.kiosk/wayland-0`, listening: true }]);
    expect(byPid.get(300)?.sockets).toEqual([{ path: `${rd}/other-0`, listening: true }]);
    expect(byPid.has(150)).toBe(false);
  });

  it('yields to the event loop inside one process with thousands of fds, and still reads all of them', async () => {
    const rd = sb.rundir(USER);
    const fds: Record<number, string> = {};
    for (let i = 0; i < 3000; i++) fds[i + 3] = i === 2999 ? `${rd}/last` : '/dev/null';
    fx.add({ pid: 100, comm: 'systemd', cgroup: '/init.scope', fds });
    let turns = 0;
    let counting = true;
    const tick = () => {
      turns++;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    const r = await scanProcs({ procRoot: fx.root, runtimeRoot: sb.runtimeRoot });
    counting = false;
    // 3,000 readlinks take milliseconds; the scan gives the loop a turn every half millisecond of them.
    expect(turns).toBeGreaterThan(2);
    expect(r.procs.map((p) => p.files)).toEqual([[{ path: `${rd}/last`, deleted: false }]]);
  });

  it('a snap daemon with a missing XDG_RUNTIME_DIR: one warning with UNIT and SNAP_INSTANCE, however many processes, however often asked', async () => {
    sb.makeRundir();
    const rd = sb.rundir(USER);
    for (let i = 0; i < 2000; i++) fx.add({ pid: 1000 + i, comm: 'frame', cgroup: '/system.slice/snap.frame.daemon.service', env: { XDG_RUNTIME_DIR: `${rd}/snap.frame` } });
    fx.add({ pid: 300, cgroup: `/user.slice/user-${USER}.slice/user@${USER}.service/app.slice/foo.service`, env: { XDG_RUNTIME_DIR: `${rd}/snap.gone` } });
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--proc-root', fx.root, '--no-logind', '--log-target', 'journal', '--journal-socket', journal.path, '--api-socket', join(sb.base, 'api.sock')]);
    const w = await journal.waitFor('runtime-dir-missing');
    expect(w).toMatchObject({ MESSAGE_ID: EVENTS['runtime-dir-missing'].id, PRIORITY: '4', UNIT: 'snap.frame.daemon.service', SNAP_INSTANCE: 'frame', OBJECT_PID: '1000', RUNDIR_UID: String(USER), XDG_RUNTIME_DIR: `${rd}/snap.frame` });
    expect(w.REMEDY).toContain('systemctl edit snap.frame.daemon.service');
    expect(w.REMEDY).toContain('/var/snap/frame/common/run');
    for (let i = 0; i < 3; i++) expect((await ctl(['doctor'])).code).toBe(1);
    const doc = JSON.parse((await ctl(['doctor', '--json'])).out);
    expect(doc.reliants.map((r: { label: string; inSession: boolean; pids: number[] }) => [r.label, r.inSession])).toEqual([
      ['foo.service', true],
      ['snap.frame.daemon.service', false],
    ]);
    expect(doc.lastScan.scanned).toBe(2001);
    // The user manager's missing dir is the user's own business: no warning for it.
    expect(journal.byEvent('runtime-dir-missing').length).toBe(1);
    expect(journal.entries.filter((e) => e.PRIORITY <= '4' && e.RUNDIRD_EVENT !== 'runtime-dir-missing')).toEqual([]);
  });
});
