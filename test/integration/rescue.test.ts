// Kiosk rescue (docs/kiosk.md) with the logind/systemd1 double on a real bus: a real server
// process outside any session listening in a plain rundir it made itself, a login that mounts
// a tmpfs over it, a logout that purges it. `restore` keeps the socket reachable through all
// of it; `linger` asks logind to keep the rundir. And `rundirctl wait`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCtl } from '../helpers/ctl.js';
import { FakeLogind, PrivateBus } from '../helpers/dbus.js';
import { DaemonProcess, GROUP, IS_ROOT, Sandbox, USER, rootOnly, waitFor } from '../helpers/sandbox.js';

let sb: Sandbox;
let bus: PrivateBus;
let logind: FakeLogind;
let d: DaemonProcess | null = null;
const kids: ChildProcess[] = [];

beforeEach(async () => {
  sb = new Sandbox();
  bus = new PrivateBus(sb.base);
  await bus.start();
  logind = await FakeLogind.start(bus.address, sb.runtimeRoot, 'systemd256');
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && d) process.stderr.write(`daemon said:\n${d.lines.map((l) => `  ${String(l.time ?? '').slice(11)} ${l.event ?? ""} ${l.msg} ${l.err ? JSON.stringify(l.err).slice(0, 600) : ""}`).join('\n')}\n${d.stderr}\n`);
  for (const k of kids.splice(0)) k.kill('SIGKILL');
  if (d?.exitCode === null) d.child.kill('SIGCONT');
  await d?.stop();
  d = null;
  await logind.kill();
  await bus.stop();
  sb.cleanup();
});

const api = () => join(sb.base, 'api.sock');
const rescueDir = (uid: number) => join(sb.runtimeRoot, '.rundird-rescue', String(uid));
const ctl = (args: string[]) => runCtl(['--api-socket', api(), ...args]);

async function startDaemon(config: string): Promise<DaemonProcess> {
  writeFileSync(sb.config, `snap-removal-grace: 0\n${config}`);
  d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--api-socket', api()], { DBUS_SYSTEM_BUS_ADDRESS: bus.address });
  await d.waitForEvent('daemon-started');
  return d;
}

/** A real server outside any session: listens at `sock` (as `uid`), answers every connection with "hello". */
async function server(sock: string, uid = 0): Promise<ChildProcess> {
  const code = `require('net').createServer((c) => { c.on('error', () => {}); c.end('hello'); }).listen(process.argv[1], () => console.log('listening'))`;
  const k = spawn(process.execPath, ['-e', code, sock], { stdio: ['ignore', 'pipe', 'inherit'], ...(uid !== 0 ? { uid, gid: GROUP } : {}) });
  kids.push(k);
  let up = false;
  k.stdout!.on('data', () => (up = true));
  await waitFor(() => up, 'the server listening');
  return k;
}

/** What a client gets from connecting to `path` (an error code if it cannot). */
function hello(path: string): Promise<string> {
  return new Promise((resolve) => {
    const c = connect(path);
    let got = '';
    c.on('data', (b) => (got += b.toString()));
    c.on('end', () => resolve(got));
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

const isSocket = (p: string) => {
  try {
    return lstatSync(p).isSocket();
  } catch {
    return false;
  }
};

describe('restore: a kiosk’s socket through a root login, its logout and the purge', () => {
  it.skipIf(!IS_ROOT)('kept, shown in the tmpfs during the session, put back after the purge, dropped when its server goes; each step journaled and in the timeline (needs root: mounting a tmpfs and a root kiosk)', async () => {
    // The kiosk makes /run/user/0 itself, as a root service outside any session does.
    const rd = join(sb.runtimeRoot, '0');
    mkdirSync(rd, { mode: 0o700 });
    const sock = join(rd, 'wayland-0');
    const kiosk = await server(sock);
    await startDaemon('rescue:\n  0: [restore]\n');
    const keptRec = await d!.waitForEvent('rescue-kept', (l) => l.path === sock);
    // UNIT= names a unit or nothing: a server outside any unit is the record's subject (comm[PID]).
    expect(String(keptRec.unit ?? '')).not.toMatch(/\[\d+\]$/);
    expect(keptRec.subject).toEqual(expect.any(String));
    const kept = join(rescueDir(0), 'wayland-0');
    expect(lstatSync(kept).ino).toBe(lstatSync(sock).ino);
    expect(lstatSync(rescueDir(0)).mode & 0o777).toBe(0o700);

    // A root login: a tmpfs over the plain dir hides the socket; rundird shows it again.
    await logind.cmd({ op: 'login', uid: 0, session: 'c1', mount: true, service: 'sshd', remote: '10.0.0.9' });
    await d!.waitForEvent('rescue-shown', (l) => l.path === sock);
    expect(readlinkSync(sock)).toBe(kept);
    expect(await hello(sock)).toBe('hello');

    // The logout: the symlink goes as the session closes, then the purge removes the dir; it is made again with the socket.
    await logind.cmd({ op: 'logout', session: 'c1', delayMs: 100 });
    await d!.waitForEvent('rescue-unshown', (l) => l.path === sock);
    await d!.waitForEvent('rescue-restored', (l) => l.path === sock, 15_000);
    expect(isSocket(sock)).toBe(true);
    expect(lstatSync(rd)).toMatchObject({ uid: 0 });
    expect(lstatSync(rd).mode & 0o777).toBe(0o700);
    expect(await hello(sock)).toBe('hello');
    const t = await ctl(['timeline', '0']);
    for (const e of ['rescue-kept', 'rescue-shown', 'rescue-unshown', 'rescue-restored']) expect(t.out).toContain(e);
    expect((await ctl(['doctor', '0'])).out).toContain('Kiosk rescue for UID 0: restore');

    // The server goes: its rescue link is dropped, and nothing is put back any more.
    // (Under systemd the unit's stop job makes rundird look; here doctor's fresh scan does.)
    kiosk.kill('SIGKILL');
    for (let i = 0; existsSync(kept); i++) {
      if (i > 100) throw new Error('the rescue link was never dropped');
      await ctl(['doctor', '0']);
      await new Promise((r) => setTimeout(r, 100));
    }
    await d!.waitForEvent('rescue-dropped', (l) => l.path === sock);
  }, 60_000);

  it.skipIf(!IS_ROOT)('never replaces what is at a socket’s path, never walks through a planted symlink, and keeps no socket of another UID (needs root: a tmpfs, a root kiosk and another UID)', async () => {
    const rd = join(sb.runtimeRoot, '0');
    mkdirSync(rd, { mode: 0o777 });
    chmodSync(rd, 0o777); // so that another UID can bind a socket in it
    mkdirSync(join(rd, 'snap.kiosk'), { mode: 0o700 });
    const sock = join(rd, 'wayland-0');
    const deep = join(rd, 'snap.kiosk/wayland-1');
    const foreign = join(rd, 'foreign-0');
    await server(sock);
    await server(deep);
    await server(foreign, USER);
    await startDaemon('rescue:\n  0: [restore]\n');
    await d!.waitForEvent('rescue-kept', (l) => l.path === sock);
    await d!.waitForEvent('rescue-kept', (l) => l.path === deep);
    await new Promise((r) => setTimeout(r, 1500)); // a scan later: still not kept
    expect(readdirSync(rescueDir(0)).sort()).toEqual(['snap.kiosk%2Fwayland-1', 'wayland-0']);

    // The login, with the daemon stopped a moment: a file at the socket's path and a symlink at
    // the private dir's, planted in the fresh tmpfs first.
    const elsewhere = join(sb.base, 'elsewhere');
    mkdirSync(elsewhere);
    d!.child.kill('SIGSTOP');
    await logind.cmd({ op: 'login', uid: 0, session: 'c1', mount: true });
    writeFileSync(sock, 'mine');
    symlinkSync(elsewhere, join(rd, 'snap.kiosk'));
    d!.child.kill('SIGCONT');
    await new Promise((r) => setTimeout(r, 1500));
    expect(readFileSync(sock, 'utf8')).toBe('mine');
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(d!.events('rescue-shown')).toEqual([]);
    await logind.cmd({ op: 'logout', session: 'c1', delayMs: 50 });
    await d!.waitForEvent('rescue-restored', (l) => l.path === deep, 15_000);
    expect(await hello(sock)).toBe('hello');
    expect(await hello(deep)).toBe('hello');
    expect(existsSync(foreign)).toBe(false);
    expect(lstatSync(join(rd, 'snap.kiosk'))).toMatchObject({ uid: 0 });
  }, 60_000);

  it.skipIf(!IS_ROOT)('a user’s own kiosk: the rundir made again with the user as owner, the socket back, after the purge (needs root: a tmpfs and another UID)', async () => {
    const rd = sb.makeRundir(USER, GROUP);
    const sock = join(rd, 'wayland-0');
    await server(sock, USER);
    await startDaemon(`rescue:\n  ${USER}: [restore]\n`);
    await d!.waitForEvent('rescue-kept', (l) => l.path === sock);
    await logind.cmd({ op: 'login', uid: USER, session: 'c1', mount: true });
    await logind.cmd({ op: 'logout', session: 'c1', delayMs: 50 });
    await d!.waitForEvent('rescue-restored', (l) => l.path === sock, 15_000);
    expect(lstatSync(rd)).toMatchObject({ uid: USER, gid: GROUP === USER ? USER : expect.any(Number) });
    expect(lstatSync(sock).uid).toBe(USER);
    expect(await hello(sock)).toBe('hello');
    // Not shown during a non-root session: the rescue directory is root's alone.
    expect(d!.events('rescue-shown')).toEqual([]);
  }, 60_000);

  it.skipIf(!IS_ROOT)('a user who swaps a directory on a kept socket’s path for a symlink to root’s sockets gets nothing of root’s kept or put back (needs root: another UID)', async () => {
    const rd = sb.makeRundir(USER, GROUP);
    mkdirSync(join(rd, 'sub'));
    chownSync(join(rd, 'sub'), USER, GROUP);
    const sock = join(rd, 'sub/wayland-0');
    const k = await server(sock, USER);
    // Root's own socket of the same name elsewhere.
    const roots = join(sb.base, 'roots');
    mkdirSync(roots, { mode: 0o755 });
    await server(join(roots, 'wayland-0'));
    await startDaemon(`rescue:\n  ${USER}: [restore]\n`);
    await d!.waitForEvent('rescue-kept', (l) => l.path === sock);
    const keptIno = lstatSync(join(rescueDir(USER), 'sub%2Fwayland-0')).ino;
    // The user: sub becomes a symlink to root's directory (the server keeps listening on its bound name).
    const out = spawnSync(process.execPath, ['-e', `const fs = require('fs'); fs.renameSync(${JSON.stringify(join(rd, 'sub'))}, ${JSON.stringify(join(rd, 'old'))}); fs.symlinkSync(${JSON.stringify(roots)}, ${JSON.stringify(join(rd, 'sub'))});`], { uid: USER, gid: GROUP });
    expect(out.status).toBe(0);
    await ctl(['doctor', String(USER)]); // a fresh scan: the server still listens there
    await new Promise((r) => setTimeout(r, 1000));
    expect(lstatSync(join(rescueDir(USER), 'sub%2Fwayland-0')).ino).toBe(keptIno);
    expect(readdirSync(rescueDir(USER))).toEqual(['sub%2Fwayland-0']);
    // The purge; the rundir made again: the kept socket (the user's own) is put back, nothing of root's.
    await logind.cmd({ op: 'login', uid: USER, session: 'c1', mount: true });
    await logind.cmd({ op: 'logout', session: 'c1', delayMs: 50 });
    await d!.waitForEvent('rescue-restored', (l) => l.path === sock, 15_000);
    expect(lstatSync(sock).ino).toBe(keptIno);
    expect(lstatSync(join(rd, 'sub')).isDirectory()).toBe(true);
    expect(lstatSync(join(rd, 'sub')).uid).toBe(USER);
    expect(lstatSync(join(roots, 'wayland-0')).nlink).toBe(1);
    k.kill('SIGKILL');
  }, 60_000);

  it.skipIf(!IS_ROOT)('without a rescue entry nothing is kept, shown or put back (needs root: mounting a tmpfs)', async () => {
    const rd = join(sb.runtimeRoot, '0');
    mkdirSync(rd, { mode: 0o700 });
    const sock = join(rd, 'wayland-0');
    await server(sock);
    await startDaemon('');
    await d!.waitForEvent('reliant-without-linger');
    await logind.cmd({ op: 'login', uid: 0, session: 'c1', mount: true });
    await logind.cmd({ op: 'logout', session: 'c1', delayMs: 50 });
    await d!.waitForEvent('rundir-purged-under-services');
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(rd)).toBe(false);
    expect(existsSync(join(sb.runtimeRoot, '.rundird-rescue'))).toBe(false);
    expect(d!.lines.filter((l) => String(l.event).startsWith('rescue-'))).toEqual([]);
  }, 30_000);
});

describe('linger', () => {
  it.skipIf(!IS_ROOT)('the policy asks logind to linger when a service outside any session relies on the rundir; the logout then purges nothing (needs root: mounting a tmpfs)', async () => {
    const rd = sb.makeRundir(USER, GROUP);
    await server(join(rd, 'wayland-0'), USER);
    await startDaemon(`rescue:\n  ${USER}: [linger]\n`);
    const l = await d!.waitForEvent('rescue-linger', (x) => x.uid === USER);
    expect(l.by).toBe('policy');
    await logind.cmd({ op: 'linger-calls' });
    expect(logind.lingerCalls).toEqual([[USER, true]]);
    await waitFor(async () => JSON.parse((await ctl(['--json', 'status'])).out).rundirs.find((r: { uid: number }) => r.uid === USER)?.linger === true, 'linger known');
    await logind.cmd({ op: 'login', uid: USER, session: 'c1', mount: true });
    await logind.cmd({ op: 'logout', session: 'c1', delayMs: 50 });
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(rd)).toBe(true);
    expect(d!.events('rundir-purged-under-services')).toEqual([]);
    expect((await ctl(['timeline', String(USER)])).out).toContain('rescue-linger');
  }, 30_000);

  it('rundirctl rescue UID --linger does it by hand; a refusal is an error that says why', async () => {
    await startDaemon('');
    const r = await ctl(['rescue', '4321', '--linger']);
    expect(r.code, r.err).toBe(0);
    await logind.cmd({ op: 'linger-calls' });
    expect(logind.lingerCalls).toEqual([[4321, true]]);
    await d!.waitForEvent('rescue-linger', (x) => x.uid === 4321 && x.by === 'rundirctl');
    await logind.cmd({ op: 'refuse-linger', message: 'Protocol driver not attached' });
    const bad = await ctl(['rescue', '4322', '--linger']);
    expect(bad.code).toBe(70);
    expect(bad.err).toContain('Protocol driver not attached');
    await d!.waitForEvent('rescue-failed', (x) => x.uid === 4322);
    // Not for an api-group member: only on a socket root alone can open.
    if (IS_ROOT) {
      writeFileSync(sb.config, `api-group: "${GROUP}"\n`);
      await d!.stop();
      d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--api-socket', api()], { DBUS_SYSTEM_BUS_ADDRESS: bus.address });
      await d.waitForEvent('daemon-started');
      await logind.cmd({ op: 'refuse-linger' });
      const member = await runCtl(['--api-socket', api(), 'rescue', '4323', '--linger'], USER, GROUP);
      expect(member.code).toBe(77);
      expect((await ctl(['rescue', '4323', '--linger'])).code).toBe(0);
    }
  }, 30_000);
});

describe('rundirctl wait', () => {
  it.skipIf(!IS_ROOT)('returns when the rundir is live and the socket accepts; exit 1 with what it waited for at the timeout (needs root: a rundir of another UID)', async () => {
    await startDaemon('');
    const rd = join(sb.runtimeRoot, String(USER));
    const early = await ctl(['wait', String(USER), '--socket', 'sub/wayland-0', '--timeout', '0.5']);
    expect(early.code).toBe(1);
    expect(early.out).toContain(`${rd} to be live`);
    const waiting = ctl(['wait', String(USER), '--socket', 'sub/wayland-0', '--timeout', '20']);
    await new Promise((r) => setTimeout(r, 300));
    sb.makeRundir(USER, GROUP);
    mkdirSync(join(rd, 'sub'));
    await new Promise((r) => setTimeout(r, 300));
    await server(join(rd, 'sub/wayland-0'), 0);
    const t0 = Date.now();
    const r = await waiting;
    expect(r.code, r.out + r.err).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    const bad = await ctl(['wait', String(USER), '--socket', '../0/x']);
    expect(bad.code).toBe(64);
  }, 30_000);
});
