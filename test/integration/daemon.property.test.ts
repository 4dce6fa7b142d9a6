// Property 2: the real daemon on a real tree, driven by random sequences: the rundir made and
// removed, a tmpfs mounted over it and taken off (as root), private dirs removed or replaced by
// a symlink or a file, snaps installed and removed, connections made and broken, the host's
// and a server snap's compositor started, stopped and restarted, and rundird itself restarted.
// At each quiet point the disk matches a model of what should be there, written independently
// of the daemon's code, and nothing outside the sandbox changed. A failing sequence is shrunk
// and printed with its seed (replay: RUNDIRD_PROPERTY_SEED=… RUNDIRD_PROPERTY_PATH=…).
// RUNDIRD_DAEMON_PROPERTY_RUNS sets the number of runs (each up to 25 steps).
import { execFileSync } from 'node:child_process';
import { lchownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { FakeSnapd } from '../helpers/fake-snapd.js';
import { DaemonProcess, GROUP, IS_ROOT, Sandbox, USER, waitFor } from '../helpers/sandbox.js';
import { SocketServer, talk } from '../helpers/sockets.js';

const RUNS = Number(process.env.RUNDIRD_DAEMON_PROPERTY_RUNS ?? 8);
const SEED = process.env.RUNDIRD_PROPERTY_SEED ? Number(process.env.RUNDIRD_PROPERTY_SEED) : undefined;
const PATH = process.env.RUNDIRD_PROPERTY_PATH;
type Inst = 'frame' | 'client';
const INSTS: Inst[] = ['frame', 'client'];

type Step =
  | { op: 'rundir-remove' }
  | { op: 'rundir-make' }
  | { op: 'mount' }
  | { op: 'umount' }
  | { op: 'privdir-break'; inst: Inst; how: 'remove' | 'symlink' | 'file' }
  | { op: 'privdir-mend'; inst: Inst }
  | { op: 'snap'; inst: Inst; on: boolean }
  | { op: 'connect'; which: 'client-wayland' | 'frame-wayplug' | 'frame-slot'; on: boolean }
  | { op: 'server'; which: 'host' | 'frame'; how: 'start' | 'stop' | 'restart' | 'rename' }
  | { op: 'rundird-restart' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.constant<Step>({ op: 'rundir-remove' }), weight: 1 },
  { arbitrary: fc.constant<Step>({ op: 'rundir-make' }), weight: 1 },
  { arbitrary: fc.constantFrom<Step>({ op: 'mount' }, { op: 'umount' }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('privdir-break' as const), inst: fc.constantFrom(...INSTS), how: fc.constantFrom('remove' as const, 'symlink' as const, 'file' as const) }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('privdir-mend' as const), inst: fc.constantFrom(...INSTS) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('snap' as const), inst: fc.constantFrom(...INSTS), on: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('connect' as const), which: fc.constantFrom('client-wayland' as const, 'frame-wayplug' as const, 'frame-slot' as const), on: fc.boolean() }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('server' as const), which: fc.constantFrom('host' as const, 'frame' as const), how: fc.constantFrom('start' as const, 'stop' as const, 'restart' as const, 'rename' as const) }), weight: 4 },
  { arbitrary: fc.constant<Step>({ op: 'rundird-restart' }), weight: 1 },
);

/** What should be there: kept by the test, from the steps alone. */
interface Model {
  rundir: 'absent' | 'plain' | 'tmpfs';
  installed: Set<Inst>;
  broken: Map<Inst, 'symlink' | 'file'>;
  conn: { 'client-wayland': boolean; 'frame-wayplug': boolean; 'frame-slot': boolean };
}

let sb: Sandbox;
let snapd: FakeSnapd;
let d: DaemonProcess | null = null;
let host: SocketServer;
let frame: SocketServer;
let outsideBefore = '';
const outside = () => join(sb.base, 'outside');

function outsideState(): string {
  return readdirSync(outside())
    .sort()
    .map((n) => {
      const s = lstatSync(join(outside(), n));
      return `${n}:${s.ino}:${s.uid}:${s.mode}:${s.size}`;
    })
    .join(',');
}

beforeAll(async () => {
  sb = new Sandbox();
  snapd = new FakeSnapd(sb.base);
  await snapd.start();
  writeFileSync(sb.config, `snap-removal-grace: 0\nsnapd-socket: ${snapd.socket}\nsnapd-state: ${snapd.stateFile}\n`);
  // What a planted symlink points at: must never change.
  mkdirSync(outside());
  writeFileSync(join(outside(), 'precious'), 'x');
  outsideBefore = outsideState();
});
afterAll(async () => {
  await d?.stop();
  await snapd.stop();
  sb.cleanup();
});

const ino = (p: string) => {
  try {
    return lstatSync(p).ino;
  } catch {
    return null;
  }
};
const isUserDir = (p: string) => {
  try {
    const s = lstatSync(p);
    return s.isDirectory() && s.uid === USER && (s.mode & 0o777) === 0o700;
  } catch {
    return false;
  }
};
const mounted = (p: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === p);

function snapdSay(m: Model): void {
  snapd.snaps = [...m.installed];
  snapd.connections = [];
  if (m.conn['client-wayland'] && m.installed.has('client')) snapd.connections.push(['client', 'wayland', 'snapd', 'wayland', 'wayland']);
  if (m.conn['frame-wayplug'] && m.installed.has('frame')) snapd.connections.push(['frame', 'wayplug', 'snapd', 'wayland', 'wayland']);
  if (m.conn['frame-slot'] && m.installed.has('frame') && m.installed.has('client')) snapd.connections.push(['client', 'wayland', 'frame', 'wayland', 'wayland']);
  snapd.touch();
}

/** The disk as the model says, as a list of mismatches (empty: it matches). */
function mismatches(m: Model): string[] {
  const rd = sb.rundir();
  const bad: string[] = [];
  if (m.rundir === 'absent') return existsSync(rd) ? ['rundir should be absent'] : [];
  const priv = (i: Inst) => sb.privateDir(i);
  for (const i of INSTS) {
    const b = m.broken.get(i);
    if (b === 'symlink' && ino(priv(i)) !== null && !lstatSync(priv(i)).isSymbolicLink()) bad.push(`${i}: planted symlink replaced`);
    else if (b === 'file' && (ino(priv(i)) === null || !lstatSync(priv(i)).isFile())) bad.push(`${i}: planted file replaced`);
    else if (!b && m.installed.has(i) && !isUserDir(priv(i))) bad.push(`${i}: private dir missing or wrong`);
    else if (!b && !m.installed.has(i) && existsSync(priv(i))) bad.push(`${i}: private dir of a removed snap left`);
  }
  const ok = (i: Inst) => m.installed.has(i) && !m.broken.has(i);
  // The client's wayland plug is connected to the system slot, to frame's slot, or both.
  const frameSlot = m.conn['frame-slot'] && m.installed.has('frame') && m.installed.has('client');
  const clientPlug = (m.conn['client-wayland'] && m.installed.has('client')) || frameSlot;
  const want = (p: string, src: SocketServer | null) => {
    if (src && ino(p) !== ino(src.path)) bad.push(`${p.slice(rd.length)} should be linked to ${src.path.slice(rd.length)}`);
    if (!src && ino(p) !== null) bad.push(`${p.slice(rd.length)} should be absent`);
  };
  const hostUp = host.up;
  const frameUp = frame.up;
  want(join(priv('client'), 'wayland-0'), hostUp && ok('client') && clientPlug ? host : null);
  want(join(priv('frame'), 'wayland-0'), hostUp && ok('frame') && m.conn['frame-wayplug'] ? host : null);
  const out = frameUp && ok('frame') && frameSlot;
  want(join(rd, 'wayland-9'), out ? frame : null);
  want(join(priv('client'), 'wayland-9'), out && ok('client') ? frame : null);
  // Nothing else of rundird's: no temporary names left behind.
  const stray = (readdirSync(rd) as string[]).concat(...INSTS.filter((i) => isUserDir(priv(i))).map((i) => readdirSync(priv(i)))).filter((n) => n.startsWith('.rundird-'));
  if (stray.length) bad.push(`temporary names left: ${stray.join(' ')}`);
  return bad;
}

async function quietPoint(m: Model, what: string): Promise<void> {
  let last: string[] = [];
  try {
    await waitFor(() => (last = mismatches(m)).length === 0, 'disk = model', 20_000);
    // …and it stays so: no loop undoes it.
    let n = d!.lines.length;
    let since = Date.now();
    await waitFor(() => {
      if (d!.lines.length !== n) (n = d!.lines.length), (since = Date.now());
      return Date.now() - since >= 150;
    }, 'quiet');
  } catch {
    // fall through to the assertion, which says what differs
  }
  last = mismatches(m);
  if (last.length) process.stderr.write(`daemon records before the mismatch after ${what}:\n${d!.lines.slice(-25).map((l) => `  ${l.event ?? ''} ${l.msg}`).join('\n')}\n`);
  expect(last, `after ${what}`).toEqual([]);
  expect(d!.exitCode).toBeNull();
  expect(outsideState()).toBe(outsideBefore);
}

async function stopServers(which: ('host' | 'frame')[] = ['host', 'frame']): Promise<void> {
  // Servers replaced by a rename still listen on an inode in the rundir: closed too (a tmpfs
  // with a bound socket in use cannot be unmounted).
  for (const w of which) {
    const srv = w === 'host' ? host : frame;
    await srv.stop();
    await srv.close();
  }
}

let removals = 0;

async function apply(m: Model, s: Step): Promise<void> {
  const rd = sb.rundir();
  const priv = (i: Inst) => sb.privateDir(i);
  switch (s.op) {
    case 'rundir-remove':
      if (m.rundir === 'absent') return;
      await stopServers();
      if (m.rundir === 'tmpfs') execFileSync('umount', [rd]);
      // Moved out of the runtime root in one step, then removed: an rm -rf in place of a live
      // plain rundir races rundird, which makes each private dir again as it goes (it cannot tell
      // that from a user's rmdir) and, syncing a UID not synced lately first, can win that race
      // for a second on end (ENOTEMPTY after 20 retries in CI).
      const gone = join(sb.base, `removed-${++removals}`);
      renameSync(rd, gone);
      rmSync(gone, { recursive: true, force: true, maxRetries: 5, retryDelay: 10 }); // a sync in flight may still finish in it
      m.rundir = 'absent';
      m.broken.clear();
      return;
    case 'rundir-make':
      if (m.rundir !== 'absent') return;
      sb.makeRundir();
      m.rundir = 'plain';
      return;
    case 'mount':
      if (!IS_ROOT || m.rundir !== 'plain') return;
      await stopServers();
      execFileSync('mount', ['-t', 'tmpfs', '-o', `mode=0700,uid=${USER},gid=${GROUP}`, 'tmpfs', rd]);
      m.rundir = 'tmpfs';
      m.broken.clear(); // what was planted is under the mount now
      return;
    case 'umount':
      if (m.rundir !== 'tmpfs') return;
      await stopServers();
      execFileSync('umount', [rd]);
      // The plain directory underneath comes back as it was: its planted entries too; the
      // daemon was blind to it meanwhile. Start clean of plantings for the model's sake.
      for (const i of INSTS) {
        const st = lstatSync(priv(i), { throwIfNoEntry: false });
        if (st && !st.isDirectory()) rmSync(priv(i), { force: true });
      }
      m.rundir = 'plain';
      m.broken.clear();
      return;
    case 'privdir-break': {
      if (m.rundir === 'absent' || !isUserDir(priv(s.inst))) return;
      if (s.inst === 'frame') await stopServers(['frame']);
      rmSync(priv(s.inst), { recursive: true, force: true });
      if (s.how === 'symlink') symlinkSync(outside(), priv(s.inst));
      if (s.how === 'file') writeFileSync(priv(s.inst), 'mine');
      if (s.how !== 'remove') {
        if (IS_ROOT) lchownSync(priv(s.inst), USER, GROUP);
        m.broken.set(s.inst, s.how);
      }
      return;
    }
    case 'privdir-mend':
      if (!m.broken.has(s.inst)) return;
      rmSync(priv(s.inst), { force: true });
      m.broken.delete(s.inst);
      return;
    case 'snap':
      if (m.installed.has(s.inst) === s.on) return;
      if (s.on) {
        sb.addSnap(s.inst);
        m.installed.add(s.inst);
      } else {
        if (s.inst === 'frame') await stopServers(['frame']);
        sb.removeSnap(s.inst);
        rmSync(join(sb.snapRoot, s.inst), { recursive: true, force: true });
        m.installed.delete(s.inst);
      }
      snapdSay(m);
      return;
    case 'connect':
      m.conn[s.which] = s.on;
      snapdSay(m);
      return;
    case 'server': {
      const srv = s.which === 'host' ? host : frame;
      if (m.rundir === 'absent') return;
      if (s.which === 'frame' && !(m.installed.has('frame') && isUserDir(priv('frame')))) return;
      if (s.how === 'start' && !srv.up) await srv.start();
      if (s.how === 'stop') await srv.stop();
      if (s.how === 'restart' && srv.up) await srv.stop(), await srv.start();
      if (s.how === 'rename' && srv.up) await srv.renameOver();
      return;
    }
    case 'rundird-restart':
      await d!.stop();
      d = await DaemonProcess.start(sb);
      return;
  }
}

describe('the real daemon under random sequences', () => {
  test.prop({ steps: fc.array(stepArb, { minLength: 5, maxLength: 25 }) }, { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}), ...(PATH ? { path: PATH } : {}) })(
    'at every quiet point the disk matches the model, nothing outside the sandbox changes, the daemon keeps running',
    async ({ steps }) => {
      // A fresh start for every run: the rundir, the snaps, the servers, the daemon.
      await d?.stop();
      if (mounted(sb.rundir())) execFileSync('umount', ['-l', sb.rundir()]);
      rmSync(sb.runtimeRoot, { recursive: true, force: true });
      mkdirSync(sb.runtimeRoot, { recursive: true, mode: 0o755 });
      rmSync(sb.snapRoot, { recursive: true, force: true });
      mkdirSync(sb.snapRoot);
      for (const f of readdirSync(sb.base)) if (f.startsWith('made-')) rmSync(join(sb.base, f));
      host = new SocketServer(join(sb.rundir(), 'wayland-0'));
      frame = new SocketServer(join(sb.privateDir('frame'), 'wayland-9'));
      const m: Model = { rundir: 'plain', installed: new Set(INSTS), broken: new Map(), conn: { 'client-wayland': true, 'frame-wayplug': true, 'frame-slot': true } };
      for (const i of INSTS) sb.addSnap(i);
      snapdSay(m);
      sb.makeRundir();
      d = await DaemonProcess.start(sb);
      try {
        await quietPoint(m, 'start');
        for (const s of steps) {
          await apply(m, s);
          await quietPoint(m, JSON.stringify(s));
        }
        // Clients connect through every link the model says is there.
        for (const [p, srv] of [[join(sb.privateDir('client'), 'wayland-0'), host], [join(sb.privateDir('client'), 'wayland-9'), frame]] as const) {
          if (ino(p) !== null) expect(await talk(p)).toBe(srv.expected());
        }
      } finally {
        await host.close();
        await frame.close();
      }
    },
    // A failing run is shrunk by running it again, smaller, many times.
    30 * 60_000,
  );
});
