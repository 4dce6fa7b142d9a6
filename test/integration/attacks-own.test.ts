// rundird touches only what is its own (issue 13, items 5-7), attacked by a real unprivileged
// user: files planted at temporary names, a root-owned directory renamed over a private dir
// between its mkdir and its fchown, a symlink where a watched directory should be.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { kioskSnapd, type FakeSnapd } from '../helpers/fake-snapd.js';
import { DaemonProcess, GROUP, IS_ROOT, Sandbox, USER, hasCommand, waitFor } from '../helpers/sandbox.js';
import { mountHangingFuse } from '../helpers/fuse.js';
import { SocketServer } from '../helpers/sockets.js';

let sb: Sandbox;
let snapd: FakeSnapd;
let d: DaemonProcess | null = null;
const servers: SocketServer[] = [];

beforeEach(async () => {
  sb = new Sandbox();
  snapd = await kioskSnapd(sb, ['wayland', 'audio-playback']);
});
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  await d?.stop();
  d = null;
  await snapd.stop();
  sb.cleanup();
});

const hasStrace = hasCommand('strace');

// -1 for a missing entry: a check racing the daemon (removed and made again) must not throw.
const ino = (p: string) => lstatSync(p, { throwIfNoEntry: false })?.ino ?? -1;

/** Runs a script as the rundir's user; resolves with what it printed. */
function asUser(script: string): Promise<string> {
  const p = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'], ...(IS_ROOT ? { uid: USER, gid: GROUP } : {}) });
  let out = '';
  p.stdout.on('data', (b: Buffer) => (out += b.toString()));
  return new Promise((r) => p.on('exit', () => r(out.trim())));
}

/** The kiosk's private dir refused as a mount, another user's login served meanwhile, and the API answering. */
async function refusedWhileOthersServed(daemon: DaemonProcess): Promise<void> {
  const r = await daemon.waitForEvent('privdir-refused', (l) => l.path === sb.privateDir('kiosk'));
  expect(r.msg).toContain('is mounted there; not entered');
  sb.makeRundir(USER + 1, GROUP);
  await waitFor(() => existsSync(sb.privateDir('kiosk', USER + 1)), 'the other user served');
  const { runCtl } = await import('../helpers/ctl.js');
  const st = await runCtl(['--api-socket', String(daemon.child.spawnargs[daemon.child.spawnargs.indexOf('--api-socket') + 1]), 'status']);
  expect(st.code === 0 || st.code === 1).toBe(true);
}

describe('only what is its own', () => {
  it('files planted at temporary link names (the old predictable ones, and look-alikes) are never removed', async () => {
    const rd = sb.makeRundir();
    const host = new SocketServer(join(rd, 'wayland-0'));
    servers.push(host);
    await host.start();
    d = await DaemonProcess.start(sb);
    const link = join(sb.privateDir('kiosk'), 'wayland-0');
    await waitFor(() => existsSync(link) && ino(link) === ino(host.path), 'linked');
    // The user plants files at every name the old scheme would have used next, and others.
    const pid = d.child.pid!;
    const planted = [...Array.from({ length: 400 }, (_, i) => `.rundird-${pid}-${i + 1}`), ...Array.from({ length: 50 }, (_, i) => `.rundird-${String(i).padStart(16, '0')}`)];
    await asUser(`const fs = require('fs'); for (const n of ${JSON.stringify(planted)}) fs.writeFileSync(${JSON.stringify(sb.privateDir('kiosk'))} + '/' + n, 'mine');`);
    const before = new Map(planted.map((n) => [n, ino(join(sb.privateDir('kiosk'), n))]));
    // Every server restart is a relink through a temporary name.
    for (let i = 0; i < 20; i++) {
      await host.stop();
      await host.start();
      await waitFor(() => existsSync(link) && ino(link) === ino(host.path), `relinked ${i}`);
    }
    for (const [n, i] of before) expect(ino(join(sb.privateDir('kiosk'), n)), n).toBe(i);
    expect(readdirSync(sb.privateDir('kiosk')).filter((n) => n.startsWith('.rundird-') && !before.has(n))).toEqual([]);
  });

  it.skipIf(!IS_ROOT)('a root-owned directory renamed over a freshly made private dir is never given to the user (needs root: a root-owned directory in a user’s rundir)', async () => {
    const rd = sb.makeRundir();
    // Something of root's in the user's rundir (the user may rename entries there, not change them).
    const victim = join(rd, '.roots');
    mkdirSync(victim, { mode: 0o755 });
    writeFileSync(join(victim, 'secret'), 'root only');
    const victimIno = ino(victim);
    d = await DaemonProcess.start(sb);
    await waitFor(() => existsSync(sb.privateDir('kiosk')), 'private dir');
    // The attacker: whenever snap.kiosk is root's (made, not yet given away), swap the victim in;
    // put it back when it is there; remove the user's own snap.kiosk so that it is made again.
    const out = await asUser(`
      const fs = require('fs'); const p = ${JSON.stringify(sb.privateDir('kiosk'))}; const v = ${JSON.stringify(victim)};
      const end = Date.now() + 2500; let swaps = 0, remade = 0;
      while (Date.now() < end) {
        let st; try { st = fs.lstatSync(p); } catch { continue; }
        try {
          if (st.ino === ${victimIno}) fs.renameSync(p, v);
          else if (st.uid === 0) { fs.renameSync(v, p); swaps++; }
          else { fs.rmdirSync(p); remade++; }
        } catch {}
      }
      try { if (fs.lstatSync(p).ino === ${victimIno}) fs.renameSync(p, v); } catch {}
      console.log(swaps + ' ' + remade);`);
    const [swaps, remade] = out.split(' ').map(Number);
    const where = existsSync(victim) ? victim : sb.privateDir('kiosk');
    const st = lstatSync(where);
    expect(st.ino).toBe(victimIno);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([0, 0, 0o755]);
    expect(readFileSync(join(where, 'secret'), 'utf8')).toBe('root only');
    expect(remade).toBeGreaterThan(10); // the daemon kept making it, so there were races to win
    process.stdout.write(`attack: ${swaps} swaps won by the attacker, ${remade} re-makes\n`);
    expect(d.exitCode).toBeNull();
  });

  it('a symlink where a watched directory should be is not watched through', async () => {
    const rd = sb.makeRundir();
    mkdirSync(join(rd, 'pulse'));
    if (IS_ROOT) chownSync(join(rd, 'pulse'), USER, GROUP);
    const pulse = new SocketServer(join(rd, 'pulse/native'));
    servers.push(pulse);
    await pulse.start();
    // Elsewhere, a directory the daemon must not watch: the user points snap.kiosk/pulse at it.
    const elsewhere = join(sb.base, 'elsewhere');
    mkdirSync(elsewhere);
    mkdirSync(sb.privateDir('kiosk'), { mode: 0o700 });
    if (IS_ROOT) chownSync(sb.privateDir('kiosk'), USER, GROUP);
    symlinkSync(elsewhere, join(sb.privateDir('kiosk'), 'pulse'));
    d = await DaemonProcess.start(sb);
    await d.waitForEvent('link-refused', (l) => l.reason === 'link-parent-refused');
    await new Promise((r) => setTimeout(r, 300));
    // The daemon's inotify watches, by inode, from its own fdinfo.
    const fdDir = `/proc/${d.child.pid}/fd`;
    const watched = new Set<number>();
    for (const fd of readdirSync(fdDir)) {
      let target = '';
      try {
        target = readlinkSync(join(fdDir, fd));
      } catch {
        continue;
      }
      if (target !== 'anon_inode:inotify') continue;
      for (const m of readFileSync(`/proc/${d.child.pid}/fdinfo/${fd}`, 'utf8').matchAll(/^inotify wd:\S+ ino:([0-9a-f]+) /gm)) watched.add(parseInt(m[1]!, 16));
    }
    expect(watched.size).toBeGreaterThan(0);
    expect(watched.has(ino(rd))).toBe(true);
    expect(watched.has(ino(elsewhere)), 'the symlink target is watched').toBe(false);
  });

  it.skipIf(!IS_ROOT || !existsSync('/dev/fuse'))('a FUSE mount that never answers, over a user’s rundir itself: never entered; the rundir is refused, every other rundir and the API are still served (needs root and /dev/fuse)', async () => {
    const rd = sb.makeRundir();
    // The user owns their rundir: fusermount lets them mount over it. A server that never reads /dev/fuse.
    const fuse = await mountHangingFuse(rd, USER, GROUP);
    let named: ReturnType<typeof spawn>[] = [];
    try {
      // And a process of the user's that names it (and a path through a symlink to it) as its
      // XDG_RUNTIME_DIR: the diagnosis checks such paths exist, and must not ask the mount.
      const other = sb.makeRundir(USER + 2, GROUP);
      symlinkSync(rd, join(other, 'to-fuse'));
      named = [rd, join(other, 'to-fuse/x')].map((dir) => spawn('sleep', ['60'], { uid: USER, gid: GROUP, env: { XDG_RUNTIME_DIR: dir }, stdio: 'ignore' }));
      d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot]);
      await d.waitForEvent('daemon-started');
      const r = await d.waitForEvent('rundir-refused', (l) => l.path === rd);
      expect(r.msg).toBe(`${rd}: absent → not-dir; ${rd} is a mount of fuse, a filesystem that could block; not entered, not written into`);
      sb.makeRundir(USER + 1, GROUP);
      await waitFor(() => existsSync(sb.privateDir('kiosk', USER + 1)), 'the other user served');
      const { runCtl } = await import('../helpers/ctl.js');
      const api = String(d.child.spawnargs[d.child.spawnargs.indexOf('--api-socket') + 1]);
      const st = await runCtl(['--api-socket', api, 'status']);
      expect(st.code === 0 || st.code === 1).toBe(true);
      // The processes were scanned and diagnosed (RELIANT 1 for both UIDs), and the daemon still answers.
      const statusSays = async (re: RegExp, what: string) => {
        for (const end = Date.now() + 15_000; ; await new Promise((r2) => setTimeout(r2, 100))) {
          const out = (await runCtl(['--api-socket', api, 'status'])).out;
          if (re.test(out)) return;
          if (Date.now() > end) throw new Error(`timed out waiting for: ${what}\n${out}`);
        }
      };
      await statusSays(/^1000 .* not-dir .* 1 +\d+\s*$/m, 'the process naming the FUSE rundir diagnosed');
      await statusSays(/^1002 .* plain .* 1 +\d+\s*$/m, 'the process naming a path through a symlink to it diagnosed');
      // doctor says why that user's snaps find no private dir.
      const doc = await runCtl(['--api-socket', api, 'doctor', String(USER)]);
      expect(doc.out).toContain(`! UID ${USER}: left alone in ${rd}:\n    rundir-not-dir: ${rd} is a mount of fuse, a filesystem that could block; not entered`);
      // rundirctl wait for a socket through that symlink: not followed; it times out, the daemon answers on.
      const w = await runCtl(['--api-socket', api, 'wait', String(USER + 2), '--socket', 'to-fuse/sock', '--timeout', '1']);
      expect(w.out).toContain('timed out after 1 s');
      expect((await runCtl(['--api-socket', api, 'status'])).code).not.toBe(2);
      expect(d.exitCode).toBeNull();
    } finally {
      fuse.close();
      for (const c of named) c.kill('SIGKILL');
    }
  }, 60_000);

  it.skipIf(!IS_ROOT || !existsSync('/dev/fuse'))('a FUSE mount that never answers, over a user’s private dir: never entered; every other rundir and the API are still served (needs root and /dev/fuse)', async () => {
    const rd = sb.makeRundir();
    const host = new SocketServer(join(rd, 'wayland-0'));
    servers.push(host);
    await host.start();
    mkdirSync(sb.privateDir('kiosk'), { mode: 0o700 });
    chownSync(sb.privateDir('kiosk'), USER, GROUP);
    // A FUSE connection whose server never reads /dev/fuse: any access to the mount hangs.
    const fuse = await mountHangingFuse(sb.privateDir('kiosk'), USER, GROUP);
    try {
      d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot]);
      try {
        await d.waitForEvent('daemon-started');
      } catch (e) {
        process.stderr.write(`daemon said:\n${d.lines.map((l) => `  ${l.event} ${l.msg}`).join('\n')}\n${d.stderr}\n`);
        try {
          process.stderr.write(`main thread: ${readFileSync(`/proc/${d.child.pid}/syscall`, 'utf8')} ${readFileSync(`/proc/${d.child.pid}/stack`, 'utf8')}\n`);
          const fn = readFileSync(`/proc/${d.child.pid}/syscall`, 'utf8').split(' ');
          process.stderr.write(`arg0 fd link: ${(() => { try { return readlinkSync(`/proc/${d.child.pid}/fd/${parseInt(fn[1]!, 16)}`); } catch { return '-'; } })()}\n`);
        } catch (e2) {
          process.stderr.write(String(e2));
        }
        throw e;
      }
      // Another user logs in meanwhile: served; and the API answers.
      await refusedWhileOthersServed(d);
      // The server restarts: the daemon goes on serving, still without entering the mount.
      await host.stop();
      await host.start();
      await new Promise((r2) => setTimeout(r2, 300));
      expect(d.exitCode).toBeNull();
    } finally {
      fuse.close();
    }
  }, 30_000);

  it.skipIf(!IS_ROOT || !existsSync('/dev/fuse'))('a FUSE mount that never answers, made over a private dir after the mount table was read: never asked; refused; the API answers (needs root and /dev/fuse)', async () => {
    const rd = sb.makeRundir();
    // The daemon's mount table is a copy taken now: the mount below is one it never reads of,
    // as a sync racing a fresh mount would not have (the kernel's statx must say it).
    const table = join(sb.base, 'mountinfo');
    writeFileSync(table, readFileSync('/proc/self/mountinfo'));
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--mountinfo', table]);
    await d.waitForEvent('daemon-started');
    await waitFor(() => existsSync(sb.privateDir('kiosk')), 'the private dir made');
    const fuse = await mountHangingFuse(sb.privateDir('kiosk'), USER, GROUP);
    try {
      // The user touches their rundir: a sync reads it, and finds the mount where the private dir was.
      writeFileSync(join(rd, 'poke'), '');
      await refusedWhileOthersServed(d);
      expect(d.exitCode).toBeNull();
    } finally {
      fuse.close();
    }
  }, 30_000);

  it.skipIf(!IS_ROOT || !hasStrace)('killed at its first fchown: never a root-owned private dir; the restart removes the leftover by its name and makes the dir (needs root and strace)', async () => {
    const rd = sb.makeRundir();
    // SIGKILL at the daemon's first fchown(2): between making a private dir and giving it to the user.
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot], {}, ['strace', '-qq', '-o', '/dev/null', '-e', 'trace=fchown', '-e', 'inject=fchown:signal=SIGKILL:when=1']);
    await waitFor(() => d!.exitCode !== null || d!.child.signalCode !== null, 'killed at its fchown', 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${d!.lines.map((l) => `${l.event} ${l.msg}`).join('\n')}\n${d!.stderr}`);
    });
    expect(d.lines.some((l) => l.event === 'daemon-started')).toBe(false);
    const after = readdirSync(rd);
    // Nothing at the private dir's name; what was being made is under a temporary name, root's.
    expect(after.filter((n) => n.startsWith('snap.'))).toEqual([]);
    const left = after.filter((n) => n.startsWith('.rundird-d'));
    expect(left).toHaveLength(1);
    expect(lstatSync(join(rd, left[0]!)).uid).toBe(0);
    // A look-alike the user made (same shape, no valid MAC) must survive what follows.
    await asUser(`require('fs').mkdirSync(${JSON.stringify(join(rd, '.rundird-d' + '0'.repeat(32)))})`);
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot]);
    const removed = await d.waitForEvent('privdir-leftover-removed');
    expect(removed.names).toEqual(left);
    await waitFor(() => existsSync(sb.privateDir('kiosk')), 'the private dir made');
    const st = lstatSync(sb.privateDir('kiosk'));
    expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }).toEqual({ uid: USER, gid: GROUP, mode: 0o700 });
    expect(readdirSync(rd).filter((n) => n.startsWith('.rundird-')).sort()).toEqual(['.rundird-d' + '0'.repeat(32)]);
  });
});
