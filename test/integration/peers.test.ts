// The real peers of a link: a real Wayland compositor (Weston, headless) serving in a user's
// rundir and its real client (wayland-info) started as a confined snap app would be, with
// XDG_RUNTIME_DIR set to the snap's private dir. What a snap sees through rundird's link is
// what a real client needs, through a compositor restart too.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { kioskSnapd, type FakeSnapd } from '../helpers/fake-snapd.js';
import { DaemonProcess, GROUP, IS_ROOT, Sandbox, USER, waitFor } from '../helpers/sandbox.js';

const HAVE = spawnSync('sh', ['-c', 'command -v weston && command -v wayland-info']).status === 0;
// .ci/run installs them: in CI a missing one is a failure, elsewhere it is said.
if (!HAVE && process.env.CI) throw new Error('weston and wayland-utils are needed (apt-get install weston wayland-utils)');
if (!HAVE) process.stderr.write('SKIPPED: no weston or wayland-info (apt-get install weston wayland-utils)\n');
let sb: Sandbox;
let snapd: FakeSnapd;
let d: DaemonProcess | null = null;
let weston: ChildProcess | null = null;

beforeEach(async () => {
  sb = new Sandbox();
  snapd = await kioskSnapd(sb);
});
afterEach(async () => {
  weston?.kill('SIGKILL');
  weston = null;
  await d?.stop();
  d = null;
  await snapd.stop();
  sb.cleanup();
});

const asUser = IS_ROOT ? { uid: USER, gid: GROUP } : {};

function startWeston(rundir: string): ChildProcess {
  return spawn('weston', ['--backend=headless-backend.so', '--socket=wayland-0', '--idle-time=0'], { env: { ...process.env, XDG_RUNTIME_DIR: rundir }, stdio: 'ignore', ...asUser });
}

/** wayland-info as the snap's app runs: XDG_RUNTIME_DIR is its private dir. */
function clientInSnap(): { code: number | null; out: string } {
  const r = spawnSync('wayland-info', [], { env: { ...process.env, XDG_RUNTIME_DIR: sb.privateDir('kiosk'), WAYLAND_DISPLAY: 'wayland-0' }, encoding: 'utf8', timeout: 10_000, ...asUser });
  return { code: r.status, out: r.stdout };
}

describe.skipIf(!HAVE)('a real compositor and its real client through the link', () => {
  it('wayland-info in the snap reaches Weston; again after Weston restarts; the link goes when Weston stops', async () => {
    const rd = sb.makeRundir();
    d = await DaemonProcess.start(sb);
    weston = startWeston(rd);
    const link = join(sb.privateDir('kiosk'), 'wayland-0');
    await waitFor(() => existsSync(link) && existsSync(join(rd, 'wayland-0')) && lstatSync(link).ino === lstatSync(join(rd, 'wayland-0')).ino, 'the link to Weston’s socket');
    let c = clientInSnap();
    expect(c.code, c.out).toBe(0);
    expect(c.out).toContain("interface: 'wl_compositor'");

    // Weston restarts: a new socket (new inode) at the same path; the link follows.
    weston.kill('SIGTERM');
    await new Promise((r) => weston!.once('exit', r));
    await waitFor(() => !existsSync(link), 'the link gone with its source');
    weston = startWeston(rd);
    await waitFor(() => existsSync(link) && existsSync(join(rd, 'wayland-0')) && lstatSync(link).ino === lstatSync(join(rd, 'wayland-0')).ino, 'the link to the new socket');
    c = clientInSnap();
    expect(c.code, c.out).toBe(0);
    expect(c.out).toContain("interface: 'wl_compositor'");
  }, 60_000);
});
