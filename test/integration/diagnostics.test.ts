// Diagnosis end to end on one machine: real processes with XDG_RUNTIME_DIR and listening
// sockets in a temporary rundir, the logind/systemd1 double on a real bus driving closing and
// purge, a datagram socket standing in for journald, and rundirctl against the running daemon.
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENTS } from '../../src/journal/events.js';
import { FakeLogind, PrivateBus } from '../helpers/dbus.js';
import { JournalReceiver, type JournalEntry } from '../helpers/journal.js';
import { runCtl } from '../helpers/ctl.js';
import { DaemonProcess, GROUP, IS_ROOT, Sandbox, USER, waitFor } from '../helpers/sandbox.js';


let sb: Sandbox;
let bus: PrivateBus;
let logind: FakeLogind;
let journal: JournalReceiver;
let d: DaemonProcess | null = null;
const kids: ChildProcess[] = [];

beforeEach(async () => {
  sb = new Sandbox();
  bus = new PrivateBus(sb.base);
  await bus.start();
  logind = await FakeLogind.start(bus.address, sb.runtimeRoot, 'systemd256');
  journal = new JournalReceiver(sb.base);
});

afterEach(async () => {
  for (const k of kids.splice(0)) k.kill('SIGKILL');
  await d?.stop();
  d = null;
  await logind.kill();
  await bus.stop();
  journal.close();
  sb.cleanup();
});

const api = () => join(sb.base, 'api.sock');

async function startDaemon(extra: string[] = []): Promise<DaemonProcess> {
  d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--log-target', 'journal', '--journal-socket', journal.path, '--api-socket', api(), ...extra], { DBUS_SYSTEM_BUS_ADDRESS: bus.address });
  await journal.waitFor('daemon-started');
  return d;
}

/** A real server process: XDG_RUNTIME_DIR set, a Unix socket listening at `sock`. */
async function kiosk(xdg: string, sock: string): Promise<ChildProcess> {
  const code = `require('net').createServer().listen(process.argv[1], () => console.log('listening'))`;
  const k = spawn(process.execPath, ['-e', code, sock], { env: { ...process.env, XDG_RUNTIME_DIR: xdg }, stdio: ['ignore', 'pipe', 'inherit'] });
  kids.push(k);
  let up = false;
  k.stdout!.on('data', () => (up = true));
  await waitFor(() => up, 'the kiosk server listening');
  return k;
}

const ctl = (args: string[]) => runCtl(['--api-socket', api(), ...args]);

async function timelineHas(event: string): Promise<void> {
  for (let i = 0; !(await ctl(['timeline', String(USER)])).out.includes(event); i++) {
    if (i > 400) throw new Error(`${event} never reached the timeline`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A plain rundir (as a root kiosk's `mkdir -p` leaves it) with the snap's private dir in it. */
function plainRundirWithPrivateDir(): { rundir: string; priv: string } {
  const rundir = sb.makeRundir();
  const priv = join(rundir, 'snap.kiosk');
  mkdirSync(priv, { mode: 0o700 });
  if (IS_ROOT) chownSync(priv, USER, GROUP);
  return { rundir, priv };
}

const count = (event: keyof typeof EVENTS) => journal.entries.filter((e) => e.MESSAGE_ID === EVENTS[event].id).length;

function expectCommonFields(e: JournalEntry, event: keyof typeof EVENTS, rundir: string, pid: number): void {
  expect(e.MESSAGE_ID).toBe(EVENTS[event].id);
  expect(e.PRIORITY).toBe(String(EVENTS[event].priority));
  expect(e.SYSLOG_IDENTIFIER).toBe('rundird');
  expect(e.RUNDIR_UID).toBe(String(USER));
  expect(e.RUNDIR_PATH).toBe(rundir);
  expect(e.OBJECT_PID).toBe(String(pid));
  expect(e.REMEDY).toContain(`loginctl enable-linger`);
  expect(e.REMEDY).toContain('PAMName=login');
  expect(e.REMEDY).toContain('\n'); // a multi-line value, sent in the protocol's binary form
}

describe('diagnosis of services that rely on a rundir outside a session', () => {
  it('warns before, at closing (with the session), and after the purge (what is gone); rundirctl names the cause and the fix', async () => {
    const { rundir, priv } = plainRundirWithPrivateDir();
    const sock = join(priv, 'wayland-0');
    const k = await kiosk(priv, sock);
    await logind.cmd({ op: 'stopdelay', usec: 600_000 });
    await startDaemon();

    // 1. Outside any session, no linger: warned from the first scan.
    const w1 = await journal.waitFor('reliant-without-linger');
    expectCommonFields(w1, 'reliant-without-linger', rundir, k.pid!);
    expect(w1.MESSAGE).toContain('does not linger');
    expect(w1.VIA).toBe('["env","socket"]');

    // 2. A session opens (as root: logind's tmpfs goes over the plain dir and hides the socket).
    await logind.cmd({ op: 'login', uid: USER, session: 'c7', service: 'sshd', remote: '10.0.0.9', mount: true });
    if (IS_ROOT) {
      const w3 = await journal.waitFor('sockets-hidden-by-mount');
      expect(w3.MESSAGE_ID).toBe(EVENTS['sockets-hidden-by-mount'].id);
      expect(w3.SOCKETS).toBe(JSON.stringify([sock]));
      expect(w3.RUNDIR_PATH).toBe(rundir);
    }

    // 3. It closes (once the daemon has read the session): the rundir is closing, with the
    //    session that caused it and the deadline.
    await timelineHas('session-new');
    const logout = logind.cmd({ op: 'logout', session: 'c7', delayMs: 600 });
    const w2 = await journal.waitFor('rundir-closing-under-services');
    expectCommonFields(w2, 'rundir-closing-under-services', rundir, k.pid!);

    expect(w2).toMatchObject({ SESSION_ID: 'c7', SESSION_SERVICE: 'sshd', SESSION_REMOTE_HOST: '10.0.0.9' });
    expect(Date.parse(w2.DEADLINE!)).toBeGreaterThan(Date.now() - 5000);
    expect(w2.MESSAGE).toContain('session c7 (sshd, from 10.0.0.9)');
    await logout;

    // 4. Purged under it: which socket is gone, caused by which session; its XDG_RUNTIME_DIR is missing.
    const w4 = await journal.waitFor('rundir-purged-under-services');
    expectCommonFields(w4, 'rundir-purged-under-services', rundir, k.pid!);
    expect(JSON.parse(w4.GONE!)).toContain(sock);
    expect(w4.SESSION_ID).toBe('c7');
    const w5 = await journal.waitFor('runtime-dir-missing');
    expect(w5.XDG_RUNTIME_DIR).toBe(priv);

    // rundirctl: the diagnosis with the fix, a timeline with the cause, status; all exit 1.
    const doc = await ctl(['doctor', String(USER)]);
    expect(doc.code).toBe(1);
    expect(doc.out).toContain('rundir-purged-under-services');
    expect(doc.out).toContain('session c7 (sshd, from 10.0.0.9)');
    expect(doc.out).toContain('loginctl enable-linger');
    const json = JSON.parse((await ctl(['doctor', '--json', String(USER)])).out);
    expect(json.healthy).toBe(false);
    // What holds now: the rundir is gone (so "will be removed" is past), the rest stands.
    expect(json.warnings.map((w: { event: string }) => w.event).sort()).toEqual(['rundir-closing-under-services', 'rundir-purged-under-services', 'runtime-dir-missing']);
    expect(json.reliants[0]).toMatchObject({ uid: USER, inSession: false, mainPid: k.pid, sockets: [sock] });
    const tl = await ctl(['timeline', String(USER)]);
    expect(tl.code).toBe(0);
    expect(tl.out).toMatch(/state-closing +after session c7 \(sshd, from 10\.0\.0\.9\) closed/);
    expect(tl.out).toContain('rundir-purged-under-services');
    expect((await ctl(['status'])).code).toBe(1);

    // Once per cause: the doctor's fresh scans raise nothing again.
    for (const e of ['reliant-without-linger', 'rundir-closing-under-services', 'rundir-purged-under-services', 'runtime-dir-missing'] as const) expect(count(e)).toBe(1);
  });

  it('with linger there is no purge and no warning; doctor says healthy', async () => {
    const { rundir, priv } = plainRundirWithPrivateDir();
    await kiosk(priv, join(priv, 'wayland-0'));
    await logind.cmd({ op: 'login', uid: USER, session: 'c1', service: 'sshd', mount: false });
    await logind.cmd({ op: 'linger', uid: USER, on: true });
    await startDaemon();
    await logind.cmd({ op: 'logout', session: 'c1', delayMs: 50 });
    await timelineHas('session-removed');
    const doc = await ctl(['doctor', String(USER)]);
    expect(doc.out).toContain('logind keeps for them (linger)');
    expect(doc.code).toBe(0);
    expect(existsSync(rundir)).toBe(true);
    expect(count('reliant-without-linger') + count('rundir-closing-under-services') + count('rundir-purged-under-services')).toBe(0);
  });

  it('looks at a unit when systemd says it started (no periodic scans)', async () => {
    const { priv } = plainRundirWithPrivateDir();
    await startDaemon();
    const k = await kiosk(priv, join(priv, 'wayland-1'));
    await logind.cmd({ op: 'unit', name: 'kiosk.service', pids: [k.pid] });
    const w1 = await journal.waitFor('reliant-without-linger');
    expect(w1.OBJECT_PID).toBe(String(k.pid));
  });
});
