// The controller against the shapes of the real field, with the real daemon, real sockets and
// a fake snapd over real HTTP: a snap shaped like Ubuntu Frame (a wayland plug and a wayland
// slot connected) beside the host compositor, servers that restart every way, a user's own
// socket, a pulse/ made late, snaps removed the way snapd 2.57 removes them, and restarts of
// rundird itself.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeSnapd } from '../helpers/fake-snapd.js';
import { DaemonProcess, GROUP, IS_ROOT, Sandbox, USER, rootOnly, waitFor } from '../helpers/sandbox.js';
import { SocketServer, talk } from '../helpers/sockets.js';

let sb: Sandbox;
let snapd: FakeSnapd;
let d: DaemonProcess | null = null;
let servers: SocketServer[] = [];

beforeEach(async () => {
  sb = new Sandbox();
  snapd = new FakeSnapd(sb.base);
  await snapd.start();
  writeFileSync(sb.config, `snap-removal-grace: 0\nsnapd-socket: ${snapd.socket}\nsnapd-state: ${snapd.stateFile}\n`);
  servers = [];
});
afterEach(async (ctx) => {
  // A failure says what the daemon said: a timing failure is otherwise hard to read.
  if (ctx.task.result?.state === 'fail' && d) process.stderr.write(`daemon said:\n${d.lines.map((l) => `  ${String(l.time ?? '').slice(11)} ${l.event ?? ''} ${l.msg}`).join('\n')}\n`);
  for (const s of servers) await s.close();
  await d?.stop();
  d = null;
  await snapd.stop();
  sb.cleanup();
});

const inode = (p: string) => {
  try {
    return lstatSync(p).ino;
  } catch {
    return null;
  }
};
const server = (path: string) => {
  const s = new SocketServer(path);
  servers.push(s);
  return s;
};
const mkdirUser = (p: string) => {
  mkdirSync(p, { mode: 0o700 });
  if (IS_ROOT) chownSync(p, USER, GROUP);
};
const LINK_EVENTS = ['link-created', 'link-replaced', 'link-removed', 'link-refused'];
const linkRecords = () => d!.lines.filter((l) => LINK_EVENTS.includes(String(l.event))).length;

/** Waits until the daemon has been quiet (no new record) for a while. */
async function quiet(ms = 250): Promise<void> {
  let n = d!.lines.length;
  let since = Date.now();
  await waitFor(
    () => {
      if (d!.lines.length !== n) {
        n = d!.lines.length;
        since = Date.now();
      }
      return Date.now() - since >= ms;
    },
    'the daemon quiet',
    15_000,
  );
}

describe('a snap shaped like Ubuntu Frame beside the host compositor', () => {
  // frame: plug wayplug (interface wayland) to the system slot, and its own wayland slot
  // serving client; client: its wayland plug connected to both.
  beforeEach(() => {
    for (const s of ['frame', 'client']) sb.addSnap(s);
    snapd.snaps = ['frame', 'client'];
    snapd.connections = [
      ['frame', 'wayplug', 'snapd', 'wayland', 'wayland'],
      ['client', 'wayland', 'frame', 'wayland', 'wayland'],
      ['client', 'wayland', 'snapd', 'wayland', 'wayland'],
    ];
  });

  /** Asserts the links on disk for which servers are up, and that clients connect through them. */
  async function expectLinks(host: SocketServer, frame: SocketServer): Promise<void> {
    const rd = sb.rundir();
    const want: [string, SocketServer | null][] = [
      [join(sb.privateDir('frame'), 'wayland-0'), host.up ? host : null],
      [join(sb.privateDir('client'), 'wayland-0'), host.up ? host : null],
      [join(rd, 'wayland-9'), frame.up ? frame : null],
      [join(sb.privateDir('client'), 'wayland-9'), frame.up ? frame : null],
    ];
    const ok = () => want.every(([p, s]) => (s ? inode(p) === inode(s.path) : inode(p) === null));
    await waitFor(ok, `links: ${want.map(([p, s]) => `${p.slice(sb.base.length)}=${s ? 'linked' : 'absent'}`).join(', ')}`);
    await quiet();
    expect(ok()).toBe(true);
    for (const [p, s] of want) if (s) expect(await talk(p)).toBe(s.expected());
    // the servers' own sockets are theirs alone: never replaced, never removed
    if (host.up) expect(await talk(host.path)).toBe(host.expected());
    if (frame.up) expect(await talk(frame.path)).toBe(frame.expected());
  }

  it('links both ways and stays right as each compositor stops, restarts by unlink+bind and by rename, in every order', async () => {
    const rd = sb.makeRundir();
    const host = server(join(rd, 'wayland-0'));
    await host.start();
    d = await DaemonProcess.start(sb);
    await waitFor(() => existsSync(sb.privateDir('frame')), 'frame private dir');
    const frame = server(join(sb.privateDir('frame'), 'wayland-9'));
    await frame.start();
    await expectLinks(host, frame);

    const steps: [string, () => Promise<void>][] = [
      ['host unlink+bind', async () => (await host.stop(), await host.start())],
      ['frame unlink+bind', async () => (await frame.stop(), await frame.start())],
      ['host rename-over', () => host.renameOver()],
      ['frame rename-over', () => frame.renameOver()],
      ['host stop', () => host.stop()],
      ['frame unlink+bind, host down', async () => (await frame.stop(), await frame.start())],
      ['frame stop', () => frame.stop()],
      ['host start, frame down', () => host.start()],
      ['host rename-over, frame down', () => host.renameOver()],
      ['frame start', () => frame.start()],
      ['both stop, frame first', async () => (await frame.stop(), await host.stop())],
      ['frame start, then host', async () => (await frame.start(), await host.start())],
      ['both stop, host first', async () => (await host.stop(), await frame.stop())],
      ['host start, then frame', async () => (await host.start(), await frame.start())],
      ['host gone for a while, then back', async () => (await host.stop(), await new Promise((r) => setTimeout(r, 1000)), await host.start())],
      ['frame gone for a while, then back', async () => (await frame.stop(), await new Promise((r) => setTimeout(r, 1000)), await frame.start())],
    ];
    for (const [name, step] of steps) {
      const before = linkRecords();
      await step();
      await expectLinks(host, frame);
      // Each step moves at most the four links, each at most twice (gone, back): no loop.
      const n = linkRecords() - before;
      expect(n, `link records for step "${name}"`).toBeLessThanOrEqual(8);
    }
    expect(d.events('link-refused')).toEqual([]);
    expect(d.exitCode).toBeNull();
  }, 90_000);

  it('never takes the user’s own compositor socket for a server snap’s link, and never removes it', async () => {
    // The user's compositor (not a snap) serves wayland-0; frame's wayplug links it into
    // snap.frame/; frame's slot is connected to client. Then the slot is disconnected.
    const rd = sb.makeRundir();
    const host = server(join(rd, 'wayland-0'));
    await host.start();
    const before = inode(host.path);
    d = await DaemonProcess.start(sb);
    await waitFor(() => inode(join(sb.privateDir('frame'), 'wayland-0')) === before, 'the host socket linked into frame');
    await quiet();
    snapd.connections = snapd.connections.filter((c) => !(c[0] === 'client' && c[2] === 'frame'));
    snapd.touch();
    await waitFor(() => snapd.requests > 0, 'snapd asked');
    await quiet(500);
    expect(inode(host.path)).toBe(before);
    expect(await talk(host.path)).toBe(host.expected());
    expect(d.events('link-removed').filter((l) => l.path === host.path)).toEqual([]);
    // …and when the frame socket link into frame goes because the host stops, wayland-0 is not re-made.
    await host.stop();
    await waitFor(() => inode(join(sb.privateDir('frame'), 'wayland-0')) === null, 'frame link gone with its source');
    await quiet();
    expect(existsSync(host.path)).toBe(false);
  });
});

/** A sound server in the rundir, the daemon started, pulse/native linked into client-a_two, quiet. */
async function linkedIntoTwo(): Promise<{ pulse: SocketServer; two: string }> {
  const rd = sb.makeRundir();
  mkdirUser(join(rd, 'pulse'));
  const pulse = server(join(rd, 'pulse/native'));
  await pulse.start();
  d = await DaemonProcess.start(sb);
  const two = sb.privateDir('client-a_two');
  await waitFor(() => inode(join(two, 'pulse/native')) === inode(pulse.path), 'linked into client-a_two');
  await quiet();
  return { pulse, two };
}

describe('directories made late, and snaps removed', () => {
  beforeEach(() => {
    for (const s of ['client-a', 'client-a_two']) sb.addSnap(s);
    snapd.snaps = ['client-a', 'client-a_two'];
    snapd.connections = [
      ['client-a', 'audio-playback', 'snapd', 'audio-playback', 'audio-playback'],
      ['client-a_two', 'audio-playback', 'snapd', 'audio-playback', 'audio-playback'],
    ];
  });

  it('links pulse/native when pulse/ is made after the rundir, and again after pulse/ is replaced', async () => {
    const rd = sb.makeRundir();
    d = await DaemonProcess.start(sb);
    await waitFor(() => existsSync(sb.privateDir('client-a')), 'private dir');
    await quiet();
    mkdirUser(join(rd, 'pulse'));
    const pulse = server(join(rd, 'pulse/native'));
    await pulse.start();
    const link = join(sb.privateDir('client-a'), 'pulse/native');
    await waitFor(() => inode(link) === inode(pulse.path), 'pulse/native linked from a pulse/ made late');
    expect(await talk(link)).toBe(pulse.expected());
    // The sound server goes and its directory with it; a new pulse/ comes, then the socket.
    await pulse.stop();
    rmSync(join(rd, 'pulse'), { recursive: true });
    await waitFor(() => inode(link) === null, 'link gone with its source');
    mkdirUser(join(rd, 'pulse'));
    await quiet(100);
    await pulse.start();
    await waitFor(() => inode(link) === inode(pulse.path), 'linked again in the new pulse/');
    expect(await talk(link)).toBe(pulse.expected());
  });

  it('snap removed: everything made for it goes, deepest first, and nothing of it is made again', async () => {
    const { pulse, two } = await linkedIntoTwo();
    snapd.snaps = ['client-a'];
    snapd.connections = snapd.connections.filter((c) => c[0] !== 'client-a_two');
    sb.removeSnap('client-a_two');
    snapd.touch();
    await waitFor(() => !existsSync(two), 'the private dir of the removed snap gone');
    await quiet();
    const removed = d.lines.filter((l) => String(l.path ?? '').startsWith(two) && /removed$/.test(String(l.event))).map((l) => `${l.event} ${String(l.path).slice(two.length)}`);
    expect(removed).toEqual(['link-removed /pulse/native', 'link-dir-removed /pulse', 'privdir-removed ']);
    expect(d.events('privdir-left')).toEqual([]);
    expect(inode(join(sb.privateDir('client-a'), 'pulse/native'))).toBe(inode(pulse.path));
  });

  it('snapd deletes the private dir of a snap it removes before it says so: not made again', async () => {
    const { pulse, two } = await linkedIntoTwo();
    // As snapd 2.57: the snap is unlinked (inactive) first, then its data, this dir included,
    // is deleted, and only later does the snap leave the list. No state-file rewrite is seen
    // in between: rundird must ask.
    snapd.inactive.add('client-a_two');
    rmSync(two, { recursive: true });
    const seen: boolean[] = [];
    for (let i = 0; i < 30; i++) {
      seen.push(existsSync(two));
      await new Promise((r) => setTimeout(r, 50));
    }
    snapd.snaps = ['client-a'];
    snapd.inactive.clear();
    snapd.touch();
    await quiet(500);
    expect(seen.every((x) => !x)).toBe(true);
    expect(existsSync(two)).toBe(false);
    expect(d.events('privdir-recreated').filter((l) => (l.path as string[]).includes(two))).toEqual([]);
    // A private dir the user removes is still made again (snapd says the snap is active).
    rmSync(sb.privateDir('client-a'), { recursive: true });
    await d.waitForEvent('privdir-recreated', (l) => (l.path as string[]).includes(sb.privateDir('client-a')));
  });
  it('snapd deleting a removed snap’s private dir, contents first: nothing is made again inside it meanwhile (snap remove would fail)', async () => {
    const { pulse, two } = await linkedIntoTwo();
    // As snapd 2.57's remove-snap-data: inactive first (not said yet), then the contents go,
    // one by one, then the directories; an entry made meanwhile makes its rmdir fail.
    snapd.inactive.add('client-a_two');
    rmSync(join(two, 'pulse/native'));
    await new Promise((r) => setTimeout(r, 150));
    // snapd's removal tolerates entries already gone (rundird removing its own empty pulse/ is
    // fine); an entry made meanwhile (ENOTEMPTY) makes `snap remove` fail.
    const rmdirAsSnapd = (p: string) => {
      try {
        rmdirSync(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    };
    expect(() => rmdirAsSnapd(join(two, 'pulse')), 'rmdir pulse/').not.toThrow();
    await new Promise((r) => setTimeout(r, 150));
    expect(() => rmdirAsSnapd(two)).not.toThrow();
    snapd.snaps = ['client-a'];
    snapd.inactive.clear();
    snapd.touch();
    await quiet(300);
    expect(existsSync(two)).toBe(false);
  });
});

describe('restarts of rundird', () => {
  beforeEach(() => {
    for (const s of ['kiosk', 'gone']) sb.addSnap(s);
    snapd.snaps = ['kiosk', 'gone'];
    snapd.connections = [['kiosk', 'wayland', 'snapd', 'wayland', 'wayland']];
  });

  it('keeps ownership: replaces its own link gone stale while it was down, removes its own dir of a snap removed meanwhile', async () => {
    const rd = sb.makeRundir();
    const host = server(join(rd, 'wayland-0'));
    await host.start();
    d = await DaemonProcess.start(sb);
    const link = join(sb.privateDir('kiosk'), 'wayland-0');
    await waitFor(() => inode(link) === inode(host.path), 'linked');
    await waitFor(() => existsSync(sb.privateDir('gone')), 'private dir of gone');
    await quiet();
    await d.stop();
    // While it is down: the compositor restarts (the link goes stale) and a snap is removed.
    await host.stop();
    await host.start();
    snapd.snaps = ['kiosk'];
    sb.removeSnap('gone');
    d = await DaemonProcess.start(sb);
    expect(d.events('records-loaded')).toHaveLength(1);
    await waitFor(() => inode(link) === inode(host.path), 'the stale link replaced');
    expect(await talk(link)).toBe(host.expected());
    await waitFor(() => !existsSync(sb.privateDir('gone')), 'its own dir of the removed snap removed');
    expect(d.events('link-refused')).toEqual([]);
    expect(d.events('privdir-left')).toEqual([]);
  });

  it('a private dir made after its records were first written is still its own after a restart', async () => {
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    // The records file beside the API socket, once it names the first private dirs.
    const apiDir = dirname(String(d.child.spawnargs[d.child.spawnargs.indexOf('--api-socket') + 1]));
    const records = () => readdirSync(apiDir).filter((f) => /^made-.*\.json$/.test(f)).map((f) => readFileSync(join(apiDir, f), 'utf8')).join('');
    await waitFor(() => records().includes('"snap.kiosk"'), 'records written');
    // A snap installed later: its private dir is made in a rundir whose records were written.
    sb.addSnap('late');
    snapd.snaps = ['kiosk', 'gone', 'late'];
    await waitFor(() => existsSync(sb.privateDir('late')), 'private dir of late');
    await d.stop();
    snapd.snaps = ['kiosk', 'gone'];
    sb.removeSnap('late');
    d = await DaemonProcess.start(sb);
    await waitFor(() => !existsSync(sb.privateDir('late')), 'its own dir of the snap removed meanwhile removed');
    expect(d.events('privdir-left')).toEqual([]);
  });

  it.skipIf(!IS_ROOT)('what it made in a plain rundir is still its own once a tmpfs mounted over it is taken off (needs root: a tmpfs over a rundir)', async () => {
    const rd = sb.makeRundir();
    d = await DaemonProcess.start(sb);
    await waitFor(() => existsSync(sb.privateDir('gone')), 'private dir in the plain rundir');
    execFileSync('mount', ['-t', 'tmpfs', '-o', `mode=0700,uid=${USER},gid=${GROUP}`, 'tmpfs', rd]);
    await waitFor(() => existsSync(sb.privateDir('gone')), 'private dir in the tmpfs');
    snapd.snaps = ['kiosk'];
    sb.removeSnap('gone');
    snapd.touch();
    await waitFor(() => !existsSync(sb.privateDir('gone')), 'removed from the tmpfs');
    execFileSync('umount', [rd]);
    await waitFor(() => !existsSync(sb.privateDir('gone')), 'its own dir in the uncovered plain rundir removed too');
    expect(d.events('privdir-left')).toEqual([]);
  });

  it.skipIf(!IS_ROOT)('…and across a restart of rundird while the mount covers it (needs root: a tmpfs over a rundir)', async () => {
    const rd = sb.makeRundir();
    d = await DaemonProcess.start(sb);
    await waitFor(() => existsSync(sb.privateDir('gone')) && existsSync(sb.privateDir('kiosk')), 'private dirs in the plain rundir');
    execFileSync('mount', ['-t', 'tmpfs', '-o', `mode=0700,uid=${USER},gid=${GROUP}`, 'tmpfs', rd]);
    await waitFor(() => existsSync(sb.privateDir('gone')), 'private dir in the tmpfs');
    snapd.snaps = ['kiosk'];
    sb.removeSnap('gone');
    snapd.touch();
    await waitFor(() => !existsSync(sb.privateDir('gone')), 'removed from the tmpfs');
    rmSync(sb.privateDir('kiosk'), { recursive: true });
    writeFileSync(sb.privateDir('kiosk'), 'planted');
    await quiet();
    await d.stop();
    d = await DaemonProcess.start(sb);
    await quiet();
    execFileSync('umount', [rd]);

    await waitFor(() => !existsSync(sb.privateDir('gone')), 'its own dir in the uncovered plain rundir removed');
    expect(lstatSync(sb.privateDir('kiosk')).isDirectory()).toBe(true);
    expect(d.events('privdir-left')).toEqual([]);
  });

  it('a records file that is not its own is set aside and said, never trusted', async () => {
    const rd = sb.makeRundir();
    d = await DaemonProcess.start(sb);
    await waitFor(() => existsSync(sb.privateDir('kiosk')), 'private dir');
    await quiet();
    await d.stop();
    const file = readdirSync(sb.base).find((n) => /^made-[0-9a-f]{12}\.json$/.test(n))!;
    expect(file).toBeDefined();
    writeFileSync(join(sb.base, file), '{"version":1,"runtimeRoot":"/elsewhere","uids":{}}');
    d = await DaemonProcess.start(sb);
    const r = await d.waitForEvent('records-set-aside');
    expect(r.msg).toContain('/elsewhere');
    expect(readdirSync(sb.base).some((n) => n.startsWith(`${file}.bad-`))).toBe(true);
    // Without records its dir is not its own any more: a removed snap's dir is left, and said.
    snapd.snaps = ['gone'];
    sb.removeSnap('kiosk');
    snapd.touch();
    await d.waitForEvent('privdir-left', (l) => l.path === sb.privateDir('kiosk'));
    expect(existsSync(sb.privateDir('kiosk'))).toBe(true);
    expect(existsSync(rd), "the rundir itself is left as it was").toBe(true);
  });

  it.skipIf(!IS_ROOT)('records that cannot be saved (a read-only /run): said once, naming the file, no temporary file left; saved again when it can be (needs root: a read-only bind mount)', async () => {
    sb.makeRundir();
    // The records live beside the API socket: a directory of their own, made read-only below.
    const dir = join(sb.base, 'run-rundird');
    mkdirSync(dir);
    d = await DaemonProcess.start(sb, ['--api-socket', join(dir, 'api.sock')]);
    await waitFor(() => existsSync(sb.privateDir('kiosk')), 'the first rundir served');
    execFileSync('mount', ['--bind', dir, dir]);
    try {
      execFileSync('mount', ['-o', 'remount,ro,bind', dir]);
      // Three changes, each saved on its own (a save follows a change by 250 ms; changes closer
      // together are saved once): three saves that fail.
      for (const u of [USER + 1, USER + 2, USER + 3]) {
        sb.makeRundir(u, GROUP);
        await waitFor(() => existsSync(sb.privateDir('kiosk', u)), `rundir ${u} served`);
        const t = Date.now();
        await waitFor(() => Date.now() - t > 350, 'the save after it');
      }
      await d.waitForEvent('source-error', (l) => l.source === 'records');
    } finally {
      execFileSync('umount', [dir]);
    }
    sb.makeRundir(USER + 4, GROUP);
    await d.waitForEvent('source-error', (l) => l.source === 'records' && String(l.msg).includes('saved again'));
    const said = d.events('source-error').filter((l) => l.source === 'records');
    expect(said.map((l) => String(l.msg).replace(/: EROFS.*/, ': EROFS'))).toEqual([expect.stringMatching(/^records: \/.*made-[0-9a-f]+\.json not saved: EROFS$/), expect.stringMatching(/saved again$/)]);
    // No temporary file of the failed saves is left behind.
    expect(readdirSync(dir).filter((n) => n.startsWith('.made-'))).toEqual([]);
  });
});
