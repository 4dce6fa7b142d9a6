// Socket and file links kept true: real Unix socket servers and clients, a fake snapd over
// real HTTP on a Unix socket, and attacks at source and target.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeSnapd } from '../helpers/fake-snapd.js';
import { talk } from '../helpers/sockets.js';
import { DaemonProcess, GROUP, IS_ROOT, Sandbox, USER, rootOnly, waitFor } from '../helpers/sandbox.js';

let sb: Sandbox;
let snapd: FakeSnapd;
let d: DaemonProcess | null = null;
const servers: Server[] = [];

beforeEach(async () => {
  sb = new Sandbox();
  snapd = new FakeSnapd(sb.base);
  await snapd.start();
  for (const s of ['kiosk', 'other', 'frame']) sb.addSnap(s);
  snapd.snaps = ['kiosk', 'other', 'frame'];
  writeFileSync(sb.config, `snap-removal-grace: 0\nsnapd-socket: ${snapd.socket}\nsnapd-state: ${snapd.stateFile}\n`);
});
afterEach(async () => {
  for (const s of servers.splice(0)) s.close();
  await d?.stop();
  d = null;
  await snapd.stop();
  sb.cleanup();
});

/** A real server listening at `path`, owned by the rundir's user; answers "hello PATH". */
async function serve(path: string): Promise<Server> {
  const s = createServer((c) => c.end(`hello ${path}`));
  await new Promise<void>((r) => s.listen(path, r));
  if (IS_ROOT) chownSync(path, USER, GROUP);
  servers.push(s);
  return s;
}

async function stopServer(s: Server, path: string): Promise<void> {
  await new Promise((r) => s.close(r));
  if (existsSync(path)) unlinkSync(path);
}

// -1 for a missing entry: a check racing the daemon (removed and made again) must not throw.
const ino = (p: string) => lstatSync(p, { throwIfNoEntry: false })?.ino ?? -1;
const wayland = (rd: string) => join(rd, 'wayland-0');
const linkOf = (inst: string) => join(sb.privateDir(inst), 'wayland-0');

async function start(): Promise<DaemonProcess> {
  d = await DaemonProcess.start(sb);
  return d;
}

describe('links entitled by snapd connections', () => {
  it('links the Wayland socket into the private dir of the snap with a connected plug; relinks after a server restart; removes it when the server stops', async () => {
    snapd.connections = [['kiosk', 'wayland', 'snapd', 'wayland', 'wayland']];
    const rd = sb.makeRundir();
    const s1 = await serve(wayland(rd));
    await start();
    await d!.waitForEvent('link-created', (l) => l.path === linkOf('kiosk'));
    expect(ino(linkOf('kiosk'))).toBe(ino(wayland(rd)));
    expect(existsSync(linkOf('other'))).toBe(false); // not entitled
    expect(await talk(linkOf('kiosk'))).toBe(`hello ${wayland(rd)}`);

    // The server restarts: a new socket, a new inode; the link follows.
    await stopServer(s1, wayland(rd));
    await serve(wayland(rd));
    await waitFor(() => existsSync(linkOf('kiosk')) && ino(linkOf('kiosk')) === ino(wayland(rd)), 'the replaced link');
    expect(await talk(linkOf('kiosk'))).toBe(`hello ${wayland(rd)}`);
    expect(d!.events('link-replaced').length + d!.events('link-removed').length).toBeGreaterThan(0);

    // It stops for good: the link goes (a restart may already have removed and re-made it once).
    const removed = d!.events('link-removed').length;
    await stopServer(servers[servers.length - 1]!, wayland(rd));
    await d!.waitForCount('link-removed', removed + 1, (l) => l.path === linkOf('kiosk'));
    await waitFor(() => !existsSync(linkOf('kiosk')), 'the link gone');
  });

  it('after its own restart, adopts the links it made and still follows the server', async () => {
    snapd.connections = [['kiosk', 'wayland', 'snapd', 'wayland', 'wayland']];
    const rd = sb.makeRundir();
    const s1 = await serve(wayland(rd));
    await start();
    await d!.waitForEvent('link-created', (l) => l.path === linkOf('kiosk'));
    await d!.stop();
    await start();
    await stopServer(s1, wayland(rd));
    await serve(wayland(rd));
    await waitFor(() => existsSync(linkOf('kiosk')) && ino(linkOf('kiosk')) === ino(wayland(rd)), 'the link following the new socket');
    expect(d!.events('link-refused')).toEqual([]);
  });

  it('follows connections as snapd changes them, and links a server snap’s socket out of its private dir', async () => {
    const rd = sb.makeRundir();
    await serve(wayland(rd));
    await start();
    expect(existsSync(linkOf('kiosk'))).toBe(false);
    snapd.connections = [['kiosk', 'wayland', 'snapd', 'wayland', 'wayland']];
    snapd.touch();
    await d!.waitForEvent('link-created', (l) => l.path === linkOf('kiosk'));
    snapd.connections = [];
    snapd.touch();
    await d!.waitForEvent('link-removed', (l) => l.path === linkOf('kiosk'));
    expect(existsSync(linkOf('kiosk'))).toBe(false);
    expect(existsSync(wayland(rd))).toBe(true); // the source is never touched

    // A Wayland server snap: its socket goes out into the rundir (slot connected).
    snapd.connections = [['other', 'wayland', 'frame', 'wayland', 'wayland']];
    await stopServer(servers[0]!, wayland(rd));
    const inFrame = join(sb.privateDir('frame'), 'wayland-1');
    await waitFor(() => existsSync(sb.privateDir('frame')), 'the private dir of frame');
    await serve(inFrame);
    snapd.touch();
    await d!.waitForEvent('link-created', (l) => l.path === join(rd, 'wayland-1'));
    expect(ino(join(rd, 'wayland-1'))).toBe(ino(inFrame));
    // …and from there into the private dir of its client.
    await waitFor(() => existsSync(join(sb.privateDir('other'), 'wayland-1')), 'the chain into the client');
    expect(await talk(join(sb.privateDir('other'), 'wayland-1'))).toBe(`hello ${inFrame}`);
  });

  it.skipIf(!IS_ROOT)('the shipped rules for PipeWire, a PulseAudio server snap and the accessibility bus (needs root: sockets owned by the rundir’s user)', async () => {
    // frame: a PulseAudio server snap (its audio-playback slot connected to kiosk's plug);
    // kiosk: also a pipewire plug; other: audio-playback only, and desktop-legacy.
    snapd.connections = [
      ['kiosk', 'audio-playback', 'frame', 'audio-playback', 'audio-playback'],
      ['kiosk', 'pipewire', 'snapd', 'pipewire', 'pipewire'],
      ['other', 'audio-playback', 'snapd', 'audio-playback', 'audio-playback'],
      ['other', 'desktop-legacy', 'snapd', 'desktop-legacy', 'desktop-legacy'],
    ];
    const rd = sb.makeRundir();
    await serve(join(rd, 'pipewire-0'));
    await serve(join(rd, 'pipewire-0-manager'));
    for (const dir of ['at-spi', 'pulse']) {
      mkdirSync(join(rd, dir));
      chownSync(join(rd, dir), USER, GROUP);
    }
    await serve(join(rd, 'at-spi/bus_0'));
    await start();
    await waitFor(() => existsSync(sb.privateDir('frame')), 'the server snap’s private dir');
    mkdirSync(join(sb.privateDir('frame'), 'pulse'));
    chownSync(join(sb.privateDir('frame'), 'pulse'), USER, GROUP);
    const server = join(sb.privateDir('frame'), 'pulse/native');
    await serve(server);
    // The server's socket goes out to pulse/native and on into its clients (both audio-playback plugs).
    await waitFor(() => existsSync(join(sb.privateDir('kiosk'), 'pulse/native')), 'the PulseAudio server in kiosk');
    await waitFor(() => existsSync(join(sb.privateDir('other'), 'pulse/native')), 'the PulseAudio server in other');
    expect(ino(join(sb.privateDir('other'), 'pulse/native'))).toBe(ino(server));
    // Out into the rundir too, where its pulse/ is (the user's own directory; rundird makes none there).
    await waitFor(() => existsSync(join(rd, 'pulse/native')), 'the server out in the rundir');
    expect(ino(join(rd, 'pulse/native'))).toBe(ino(server));
    expect(await talk(join(sb.privateDir('kiosk'), 'pulse/native'))).toBe(`hello ${server}`);
    // PipeWire's native socket for the pipewire plug only; never the manager socket.
    await waitFor(() => existsSync(join(sb.privateDir('kiosk'), 'pipewire-0')), 'pipewire-0 in kiosk');
    expect(existsSync(join(sb.privateDir('other'), 'pipewire-0'))).toBe(false);
    expect(existsSync(join(sb.privateDir('kiosk'), 'pipewire-0-manager'))).toBe(false);
    // The accessibility bus for desktop-legacy.
    await waitFor(() => existsSync(join(sb.privateDir('other'), 'at-spi/bus_0')), 'at-spi in other');
    expect(existsSync(join(sb.privateDir('kiosk'), 'at-spi'))).toBe(false);
  });

  it('snapd slow, answering garbage or an error, or down: the last known state stays, said once, no crash', async () => {
    snapd.connections = [['kiosk', 'wayland', 'snapd', 'wayland', 'wayland']];
    const rd = sb.makeRundir();
    await serve(wayland(rd));
    await start();
    await d!.waitForEvent('link-created');
    for (const mode of ['garbage', 'error', 'huge', 'slow'] as const) {
      snapd.mode = mode;
      const before = snapd.requests;
      snapd.touch();
      await waitFor(() => snapd.requests > before, `a request in mode ${mode}`);
    }
    await d!.waitForEvent('snapd-unavailable');
    await snapd.stop(); // down
    snapd.touch();
    await new Promise((r) => setTimeout(r, 300));
    expect(d!.events('snapd-unavailable').length).toBe(1); // once per outage
    expect(existsSync(linkOf('kiosk'))).toBe(true); // last known connections stay in force
    expect(d!.exitCode).toBeNull();
    // Back, with the connection gone.
    snapd.mode = 'ok';
    snapd.connections = [];
    await snapd.start();
    snapd.touch();
    await d!.waitForEvent('link-removed', (l) => l.path === linkOf('kiosk'), 15_000);
  }, 30_000);
});

describe('a snapd that hangs at start', () => {
  it('does not hold the first pass: the snap root serves first, snapd is caught up with when it answers (issue 27)', async () => {
    snapd.mode = 'slow'; // accepts, answers after 10 s (rundird gives up on it after 3)
    sb.makeRundir();
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot]);
    const started = await d.waitForEvent('daemon-started');
    // Started before snapd's request timed out, with the private dirs the snap root names.
    expect(d.events('snapd-unavailable')).toEqual([]);
    expect(started.instances).toBe(3);
    for (const s of ['kiosk', 'other', 'frame']) expect(existsSync(sb.privateDir(s)), s).toBe(true);
    // snapd answers again: followed from then on, connections and all.
    await d.waitForEvent('snapd-unavailable');
    snapd.mode = 'ok';
    snapd.connections = [['kiosk', 'wayland', 'snapd', 'wayland', 'wayland']];
    await serve(wayland(sb.rundir(USER)));
    snapd.touch();
    await d.waitForEvent('link-created', (l) => l.path === linkOf('kiosk'), 15_000);
  }, 30_000);
});

describe('link attacks', () => {
  beforeEach(() => {
    snapd.connections = [
      ['kiosk', 'wayland', 'snapd', 'wayland', 'wayland'],
      ['kiosk', 'audio-playback', 'snapd', 'audio-playback', 'audio-playback'],
      ['kiosk', 'desktop', 'snapd', 'desktop', 'desktop'],
    ];
  });

  it('a symlink planted at the target is left alone and reported; nothing is written through it', async () => {
    const rd = sb.makeRundir();
    const victim = join(sb.base, 'victim');
    writeFileSync(victim, 'precious');
    await serve(wayland(rd));
    mkdirSync(sb.privateDir('kiosk'), { mode: 0o700 });
    if (IS_ROOT) chownSync(sb.privateDir('kiosk'), USER, GROUP);
    symlinkSync(victim, linkOf('kiosk'));
    await start();
    const r = await d!.waitForEvent('link-refused', (l) => l.path === linkOf('kiosk'));
    expect(r.reason).toBe('link-target-occupied');
    expect(readlinkSync(linkOf('kiosk'))).toBe(victim);
    expect(lstatSync(victim).nlink).toBe(1);
  });

  it('a symlink as an intermediate directory stops the link', async () => {
    const rd = sb.makeRundir();
    const elsewhere = join(sb.base, 'elsewhere');
    mkdirSync(elsewhere);
    mkdirSync(join(rd, 'pulse'));
    if (IS_ROOT) chownSync(join(rd, 'pulse'), USER, GROUP);
    await serve(join(rd, 'pulse/native'));
    mkdirSync(sb.privateDir('kiosk'), { mode: 0o700 });
    if (IS_ROOT) chownSync(sb.privateDir('kiosk'), USER, GROUP);
    symlinkSync(elsewhere, join(sb.privateDir('kiosk'), 'pulse'));
    await start();
    const r = await d!.waitForEvent('link-refused', (l) => l.path === join(sb.privateDir('kiosk'), 'pulse/native'));
    expect(r.reason).toBe('link-parent-refused');
    expect(execFileSync('ls', ['-A', elsewhere], { encoding: 'utf8' })).toBe('');
  });

  it('makes an intermediate directory with the private dir’s owner and 0700, and links into it', async () => {
    const rd = sb.makeRundir();
    mkdirSync(join(rd, 'pulse'));
    if (IS_ROOT) chownSync(join(rd, 'pulse'), USER, GROUP);
    await serve(join(rd, 'pulse/native'));
    await start();
    await d!.waitForEvent('link-created', (l) => l.path === join(sb.privateDir('kiosk'), 'pulse/native'));
    const st = lstatSync(join(sb.privateDir('kiosk'), 'pulse'));
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([USER, GROUP, 0o700]);
    expect(await talk(join(sb.privateDir('kiosk'), 'pulse/native'))).toContain('hello');
  });

  it('refuses a symlink, a directory or a FIFO as a source', async () => {
    const rd = sb.makeRundir();
    const secret = join(sb.base, 'secret');
    writeFileSync(secret, 'root only', { mode: 0o600 });
    symlinkSync(secret, join(rd, 'wayland-0')); // a source swapped for a symlink to a root-owned file
    mkdirSync(join(rd, 'wayland-1'));
    execFileSync('mkfifo', [join(rd, 'wayland-2')]);
    if (IS_ROOT) for (const n of ['wayland-1', 'wayland-2']) chownSync(join(rd, n), USER, GROUP);
    await start();
    const refused = await d!.waitForCount('link-refused', 3, (l) => l.reason === 'link-source-refused');
    expect(refused.map((l) => String(l.msg)).join('\n')).toMatch(/symlink[\s\S]*dir[\s\S]*fifo|fifo[\s\S]*dir|dir[\s\S]*symlink/);
    for (const n of ['wayland-0', 'wayland-1', 'wayland-2']) expect(existsSync(join(sb.privateDir('kiosk'), n))).toBe(false);
  });

  it.skipIf(!IS_ROOT)('never links a source owned by another user (needs root: a source owned by another user)', async () => {
    const rd = sb.makeRundir();
    writeFileSync(join(rd, 'bus'), 'x');
    chownSync(join(rd, 'bus'), 4243, 4243);
    await start();
    const r = await d!.waitForEvent('link-refused', (l) => l.path === join(sb.privateDir('kiosk'), 'bus'));
    expect(r.msg).toContain('belongs to UID 4243');
    expect(existsSync(join(sb.privateDir('kiosk'), 'bus'))).toBe(false);
  });

  it.skipIf(!IS_ROOT)('across filesystems (EXDEV): a symlink where the rule allows it, a clear warning where not (needs root: a tmpfs over a private dir)', async () => {
    const rd = sb.makeRundir();
    await serve(wayland(rd));
    writeFileSync(join(rd, 'bus'), 'x');
    chownSync(join(rd, 'bus'), USER, GROUP);
    mkdirSync(sb.privateDir('kiosk'), { mode: 0o700 });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `mode=0700,uid=${USER},gid=${GROUP}`, 'tmpfs', sb.privateDir('kiosk')]);
    await start();
    await d!.waitForEvent('link-created', (l) => l.path === linkOf('kiosk') && l.kind === 'symlink');
    expect(readlinkSync(linkOf('kiosk'))).toBe('../wayland-0');
    const r = await d!.waitForEvent('link-refused', (l) => l.path === join(sb.privateDir('kiosk'), 'bus'));
    expect(r.reason).toBe('link-exdev');
  });
});
