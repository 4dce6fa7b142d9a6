// The status API's socket and its limits, and rundirctl's exit codes against the real daemon.
import { spawn } from 'node:child_process';
import { lstatSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCtl } from '../helpers/ctl.js';
import { DaemonProcess, GROUP, Sandbox, USER, hasCommand, rootOnly, waitFor, IS_ROOT } from '../helpers/sandbox.js';

let sb: Sandbox;
let d: DaemonProcess | null = null;
const sock = () => join(sb.base, 'api.sock');

beforeEach(() => {
  sb = new Sandbox();
});
afterEach(async () => {
  await d?.stop();
  d = null;
  sb.cleanup();
});

const start = (extra: string[] = []) => DaemonProcess.start(sb, ['--api-socket', sock(), ...extra]);

const ctl = runCtl;

function raw(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const r = request({ socketPath: sock(), path, method, headers }, (m) => {
      let b = '';
      m.on('data', (c: Buffer) => (b += c));
      m.on('end', () => res({ status: m.statusCode!, body: b }));
    });
    r.on('error', rej);
    r.end(body);
  });
}

describe('status API', () => {
  it('listens with mode 0600, answers GET only, refuses bodies, bad UIDs and unknown paths', async () => {
    d = await start();
    const st = lstatSync(sock());
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(process.geteuid!());
    expect((await raw('GET', '/v1/status')).status).toBe(200);
    expect((await raw('HEAD', '/v1/status')).body).toBe('');
    expect((await raw('POST', '/v1/status')).status).toBe(405);
    expect((await raw('DELETE', '/v1/warnings')).status).toBe(405);
    expect((await raw('GET', '/v1/status', 'x'.repeat(100), { 'content-length': '100' })).status).toBe(413);
    expect((await raw('GET', '/v1/rundirs/abc/timeline')).status).toBe(400);
    expect((await raw('GET', '/v1/rundirs/99999999999/timeline')).status).toBe(400);
    // A malformed percent-encoding is a 400 and no error record, not a 500.
    expect((await raw('GET', '/v1/rundirs/%E0%A4%A/timeline')).status).toBe(400);
    expect(d!.lines.filter((l) => l.level === 'error')).toEqual([]);
    expect((await raw('GET', '/v1/doctor?uid=-1')).status).toBe(400);
    expect((await raw('GET', '/v1/rundirs/123/timeline')).status).toBe(404);
    expect((await raw('GET', '/etc/passwd')).status).toBe(404);
    expect((await raw('GET', '/v1/' + 'a'.repeat(2000))).status).toBe(414);
    // headers beyond the limit close the connection; the daemon stays up
    await expect(raw('GET', '/v1/status', undefined, { 'x-big': 'y'.repeat(20000) })).rejects.toThrow();
    expect((await raw('GET', '/v1/status')).status).toBe(200);
  });

  it('a client sending its headers a byte at a time is cut off after the 5 s it is promised; others are served meanwhile', async () => {
    d = await start();
    const c = connect(sock());
    const t0 = Date.now();
    const closed = new Promise<number>((r) => c.on('close', () => r(Date.now() - t0)));
    c.on('error', () => undefined);
    const req = 'GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'z'.repeat(200);
    let i = 0;
    const drip = setInterval(() => (i < req.length ? c.write(req[i++]!) : undefined), 250);
    expect((await raw('GET', '/v1/status')).status).toBe(200);
    const ms = await closed;
    clearInterval(drip);
    // Node's own check runs every 30 s (14-29 s seen); the bound here is generous, not a benchmark.
    expect(ms).toBeLessThan(12_000);
    expect(ms).toBeGreaterThanOrEqual(4_500);
  }, 30_000);

  it('gives the socket to a configured group (0660)', async () => {
    writeFileSync(sb.config, `snap-removal-grace: 0\napi-group: "${GROUP}"\n`);
    d = await start();
    const st = lstatSync(sock());
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.gid).toBe(GROUP);
  });

  it('replaces a stale socket of an earlier run, and removes its own at stop', async () => {
    const stale = spawn(process.execPath, ['-e', `require('net').createServer().listen(process.argv[1], () => console.log('up'))`, sock()], { stdio: ['ignore', 'pipe', 'inherit'] });
    let up = false;
    stale.stdout!.on('data', () => (up = true));
    await waitFor(() => up, 'stale server');
    stale.kill('SIGKILL'); // leaves the socket file behind
    await new Promise((r) => stale.once('exit', r));
    expect(lstatSync(sock()).isSocket()).toBe(true);
    d = await start();
    // (the inode number may well be reused: that the daemon answers is the proof)
    expect((await ctl(['--api-socket', sock(), 'status'])).code).toBe(0);
    await d.stop();
    d = null;
    expect(() => lstatSync(sock())).toThrow();
  });

  it('never replaces a file, a symlink or a live socket at its path', async () => {
    writeFileSync(sock(), 'precious');
    let p = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--api-socket', sock()]);
    expect(await p.wait()).toBe(1);
    expect(p.stderr).toContain('exists and is not a socket');
    expect(readFileSync(sock(), 'utf8')).toBe('precious');

    const link = join(sb.base, 'link.sock');
    symlinkSync(sock(), link);
    p = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--api-socket', link]);
    expect(await p.wait()).toBe(1);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);

    const live = join(sb.base, 'live.sock');
    const srv = createServer().listen(live);
    await new Promise((r) => srv.once('listening', r));
    p = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--api-socket', live]);
    expect(await p.wait()).toBe(1);
    expect(p.stderr).toContain('another process');
    srv.close();
  });
});

describe('rundirctl exit codes', () => {
  it('0 healthy, 1 nothing recorded, 64 usage, 69 unreachable', async () => {
    d = await start();
    const s = await ctl(['--api-socket', sock(), 'status']);
    expect(s.code).toBe(0);
    expect(s.out).toContain('inotify mode');
    expect(s.out).toContain('no warnings');
    expect(JSON.parse((await ctl(['--api-socket', sock(), '--json', 'status'])).out).mode).toBe('inotify');
    const doc = await ctl(['--api-socket', sock(), 'doctor']);
    expect(doc.code).toBe(0);
    expect(doc.out).toContain('no problems found');
    expect((await ctl(['--api-socket', sock(), 'timeline', '4242'])).code).toBe(1);
    expect((await ctl(['--api-socket', sock(), 'frobnicate'])).code).toBe(64);
    expect((await ctl(['--api-socket', sock(), 'timeline'])).code).toBe(64);
    expect((await ctl(['--api-socket', sock(), 'timeline', 'root'])).code).toBe(64);
    expect((await ctl(['--api-socket', sock(), '--bogus', 'status'])).code).toBe(64);
    const un = await ctl(['--api-socket', join(sb.base, 'nothing.sock'), 'status']);
    expect(un.code).toBe(69);
    expect(un.err).toContain('is rundird running?');
  });

  it.skipIf(!IS_ROOT)('77 for a user who may not open the socket (needs root: rundirctl as nobody)', async () => {
    d = await start();
    const r = await ctl(['--api-socket', sock(), 'status'], 65534);
    expect(r.code).toBe(77);
    expect(r.err).toContain('permission denied');
  });

  it('wait, started before the daemon (as a kiosk may be at boot), retries until it is there and the rundir is live', async () => {
    sb.addSnap('kiosk');
    // No daemon yet: its first connect fails (ENOENT); before, that was exit 69 at once.
    const waiting = ctl(['--api-socket', sock(), 'wait', String(USER), '--timeout', '30']);
    sb.makeRundir();
    d = await start();
    // Success says nothing (not even an empty line), as systemctl is-active -q would not.
    expect(await waiting).toMatchObject({ code: 0, out: '', err: '' });
    // --json=short: one line; --json (pretty): indented.
    const short = await ctl(['--api-socket', sock(), '--json=short', 'status']);
    expect(short.out.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(short.out).mode).toBe('inotify');
    expect((await ctl(['--api-socket', sock(), '--json', 'status'])).out.split('\n').length).toBeGreaterThan(5);
    // With nothing ever there, it gives up at its timeout, still saying the daemon is unreachable.
    const gone = await ctl(['--api-socket', join(sb.base, 'nothing.sock'), 'wait', String(USER), '--timeout', '1']);
    expect(gone.code).toBe(69);
  });

  it.skipIf(!hasCommand('systemd-socket-activate'))('takes the API socket systemd passes (socket activation): started by the first client, which it then answers; never removes it (needs systemd-socket-activate)', async () => {
    // systemd-socket-activate listens at the path, and starts the daemon on the first connection with LISTEN_FDS.
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--api-socket', sock()], {}, ['systemd-socket-activate', '-l', sock(), '--fdname=api']);
    await waitFor(() => lstatSync(sock(), { throwIfNoEntry: false })?.isSocket() === true, 'the socket made by systemd-socket-activate');
    const ino = lstatSync(sock()).ino;
    expect(d.lines).toEqual([]); // nothing started yet
    const s = await ctl(['--api-socket', sock(), 'status']);
    expect(s.code, s.err).toBe(0);
    expect(s.out).toContain('inotify mode');
    expect((await d.waitForEvent('daemon-started')).api_socket_from_systemd).toBe(true);
    expect(await d.stop()).toBe(0);
    // The socket is its maker's: still there, the same one.
    expect(lstatSync(sock()).ino).toBe(ino);
  });

  it('70 when something else answers on the socket', async () => {
    const srv = createServer((c) => c.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello')).listen(sock());
    await new Promise((r) => srv.once('listening', r));
    expect((await ctl(['--api-socket', sock(), 'status'])).code).toBe(70);
    srv.close();
  });
});
