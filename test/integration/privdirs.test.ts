// The real daemon on a temporary tree: private dirs follow rundirs, removals and the snap inventory.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chownSync, lstatSync, mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { DaemonProcess, GROUP, IS_ROOT, Sandbox, USER, rootOnly, stat, waitFor } from '../helpers/sandbox.js';

let sb: Sandbox;
let d: DaemonProcess | null = null;

beforeEach(() => {
  sb = new Sandbox();
  for (const s of ['firefox', 'hello-world', 'ubuntu-frame_kiosk']) sb.addSnap(s);
});

afterEach(async () => {
  await d?.stop();
  d = null;
  sb.cleanup();
});

const isPrivate = (p: string) => {
  const s = stat(p);
  return s !== null && s.kind === 'dir' && s.uid === USER && s.gid === GROUP && s.mode === 0o700;
};

describe('private dirs', () => {
  it('says which mode it runs in, and makes the dirs of rundirs that exist at start', async () => {
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    expect(d.events('daemon-started')[0]).toMatchObject({ mode: 'inotify', instances: 3 });
    expect(d.events('daemon-started')[0]!.msg).toMatch(/inotify mode.*no logind on the bus/);
    for (const s of ['firefox', 'hello-world', 'ubuntu-frame_kiosk']) expect(isPrivate(sb.privateDir(s))).toBe(true);
    // In causal order: the directory appeared, then its lifecycle state, then what was made in it.
    const order = d.lines.map((l) => (l.event === 'rundir-state' ? `state-${l.state}` : l.event));
    expect(order.indexOf('rundir-appeared')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('rundir-appeared')).toBeLessThan(order.indexOf('state-live'));
    expect(order.indexOf('state-live')).toBeLessThan(order.indexOf('privdir-created'));
  });

  it('makes them, with the user as owner, the rundir group and 0700, when a rundir appears', async () => {
    d = await DaemonProcess.start(sb);
    sb.makeRundir();
    await waitFor(() => ['firefox', 'hello-world', 'ubuntu-frame_kiosk'].every((s) => isPrivate(sb.privateDir(s))), 'private dirs');
    // One record for the three, not one each (a login wave would fill journald's rate limit).
    const created = await d.waitForEvent('privdir-created');
    expect((created.instance as string[]).sort()).toEqual(['firefox', 'hello-world', 'ubuntu-frame_kiosk']);
    expect((created.path as string[]).sort()).toEqual(['firefox', 'hello-world', 'ubuntu-frame_kiosk'].map((s) => sb.privateDir(s)));
    expect(created).toMatchObject({ uid: USER, owner: USER, group: GROUP, mode: '0700', count: 3 });
    expect(created.msg).toBe(`created 3 private dirs in ${sb.rundir()}: ${(created.path as string[]).map((p) => p.split('/').pop()).join(', ')}`);
    expect(d.events('privdir-created')).toHaveLength(1);
    expect(d.events('rundir-appeared')[0]).toMatchObject({ uid: USER, status: 'plain' });
  });

  it('re-creates a removed private dir and logs a re-creation', async () => {
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    rmdirSync(sb.privateDir('firefox'));
    const again = await d.waitForEvent('privdir-recreated');
    expect(again).toMatchObject({ instance: ['firefox'], path: [sb.privateDir('firefox')], msg: `re-created ${sb.privateDir('firefox')}` });
    expect(isPrivate(sb.privateDir('firefox'))).toBe(true);
  });

  it('corrects a wrong mode through the descriptor', async () => {
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    chmodSync(sb.privateDir('hello-world'), 0o755);
    await d.waitForEvent('privdir-corrected', (l) => l.instance === 'hello-world');
    expect(stat(sb.privateDir('hello-world'))!.mode).toBe(0o700);
  });

  it('follows snaps being installed and removed; removes only its own empty dirs', async () => {
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    sb.addSnap('new-snap');
    await waitFor(() => isPrivate(sb.privateDir('new-snap')), 'dir of the new snap');

    // firefox's dir holds a file: left in place and reported. hello-world's is empty: removed.
    writeFileSync(`${sb.privateDir('firefox')}/state`, 'x');
    sb.removeSnap('firefox');
    sb.removeSnap('hello-world');
    await waitFor(() => stat(sb.privateDir('hello-world')) === null, 'removal of the empty dir');
    const left = await d.waitForEvent('privdir-left', (l) => l.instance === 'firefox');
    expect(left.msg).toContain('not empty');
    expect(stat(`${sb.privateDir('firefox')}/state`)).not.toBeNull();
    expect((await d.waitForCount('privdir-removed', 1)).map((l) => l.instance)).toEqual(['hello-world']);
  });

  it('never removes a private dir it did not make', async () => {
    sb.makeRundir();
    mkdirSync(sb.rundir() + '/snap.hello-world', { mode: 0o700 }); // made by "snap run" before the daemon started
    d = await DaemonProcess.start(sb);
    sb.removeSnap('hello-world');
    await d.waitForEvent('privdir-left', (l) => l.instance === 'hello-world');
    expect(stat(sb.privateDir('hello-world'))).not.toBeNull();
  });

  it('holds off during the grace period of a refresh', async () => {
    writeFileSync(sb.config, 'snap-removal-grace: 3600\n');
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    sb.removeSnap('hello-world');
    await d.waitForEvent('snaps-changed', (l) => (l.departing as string[]).includes('hello-world'));
    rmdirSync(sb.privateDir('hello-world')); // snapd cleaning up must not be raced back into existence
    sb.addSnap('other-snap');
    await waitFor(() => isPrivate(sb.privateDir('other-snap')), 'a later pass');
    expect(stat(sb.privateDir('hello-world'))).toBeNull();
  });

  it('applies include/exclude and the UID selection', async () => {
    writeFileSync(sb.config, `private-dirs:\n  exclude: [firefox]\n  users:\n    ${USER}:\n      include: ["hello-*", firefox]\n`);
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    expect(isPrivate(sb.privateDir('hello-world'))).toBe(true);
    expect(stat(sb.privateDir('firefox'))).toBeNull();
    expect(stat(sb.privateDir('ubuntu-frame_kiosk'))).toBeNull();
  });

  it('leaves UIDs that are not selected alone', async () => {
    writeFileSync(sb.config, `private-dirs:\n  uids: [${USER + 1}-${USER + 10}]\n`);
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    sb.addSnap('later-snap');
    await d.waitForEvent('snaps-changed', (l) => (l.added as string[]).includes('later-snap'));
    await new Promise((r) => setTimeout(r, 200));
    expect(stat(sb.privateDir('later-snap'))).toBeNull();
    expect(d.events('privdir-created')).toEqual([]);
  });

  it('ignores names under the runtime root that are not UIDs', async () => {
    d = await DaemonProcess.start(sb);
    mkdirSync(`${sb.runtimeRoot}/not-a-uid`);
    sb.makeRundir();
    await waitFor(() => isPrivate(sb.privateDir('firefox')), 'dirs in the real rundir');
    expect(stat(`${sb.runtimeRoot}/not-a-uid/snap.firefox`)).toBeNull();
  });

  it('handles a rundir removed and made again', async () => {
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    // Moved away first: rm -rf in place races the daemon re-making dirs in it (as it should).
    renameSync(sb.rundir(), `${sb.base}/trash`);
    await d.waitForEvent('rundir-removed');
    sb.makeRundir();
    await waitFor(() => isPrivate(sb.privateDir('firefox')), 'dirs in the new rundir');
    expect(await d.waitForCount('rundir-appeared', 2)).toHaveLength(2);
  });
});

describe('a tmpfs mounted over a rundir', () => {
  const mounted: string[] = [];
  afterEach(() => {
    for (const m of mounted.splice(0).reverse()) execFileSync('umount', ['-l', m]);
  });

  it.skipIf(rootOnly('a tmpfs mounted over a rundir'))('re-creates the dirs inside the mount, and after the umount', async () => {
    const rd = sb.makeRundir();
    d = await DaemonProcess.start(sb);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `mode=0700,uid=${USER},gid=${GROUP},size=1m`, 'tmpfs', rd]);
    mounted.push(rd);
    await d.waitForEvent('rundir-mounted');
    await waitFor(() => ['firefox', 'hello-world', 'ubuntu-frame_kiosk'].every((s) => isPrivate(sb.privateDir(s))), 'dirs inside the tmpfs');
    // The watch was re-armed on the mount: a removal inside the tmpfs is seen.
    rmdirSync(sb.privateDir('firefox'));
    await waitFor(() => isPrivate(sb.privateDir('firefox')), 're-creation inside the tmpfs');
    execFileSync('umount', [rd]);
    mounted.pop();
    await d.waitForEvent('rundir-unmounted');
    // The plain directory underneath kept its own; take one away to see the watch there too.
    rmdirSync(sb.privateDir('hello-world'));
    await waitFor(() => isPrivate(sb.privateDir('hello-world')), 're-creation after the umount');
  });

  it.skipIf(rootOnly('a tmpfs mounted over the runtime root'))('follows a tmpfs mounted over the runtime root itself', async () => {
    d = await DaemonProcess.start(sb);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0755,size=1m', 'tmpfs', sb.runtimeRoot]);
    mounted.push(sb.runtimeRoot);
    await d.waitForEvent('runtime-root-remounted');
    // Inside the new tmpfs (so made in place, not renamed in): only a re-armed root watch sees it.
    mkdirSync(sb.rundir(), { mode: 0o700 });
    chownSync(sb.rundir(), USER, GROUP);
    await waitFor(() => isPrivate(sb.privateDir('firefox')), 'dirs in a rundir on the new root');
  });

  it.skipIf(rootOnly('a read-only tmpfs over a rundir'))('reports a write that fails for another reason once, as such', async () => {
    d = await DaemonProcess.start(sb);
    const rd = sb.rundir();
    mkdirSync(rd, { mode: 0o700 });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `ro,mode=0700,uid=${USER},gid=${GROUP},size=1m`, 'tmpfs', rd]);
    mounted.push(rd);
    const r = await d.waitForEvent('privdir-refused', (l) => l.instance === 'firefox');
    expect(r.reason).toBe('privdir-write-failed');
    expect(r.msg).toContain('EROFS');
    expect(d.exitCode).toBeNull();
  });

  it.skipIf(rootOnly('logind order: root-owned mkdir, then tmpfs'))('waits, without a warning, in a root-owned rundir until the tmpfs is on it', async () => {
    d = await DaemonProcess.start(sb);
    const rd = sb.rundir();
    mkdirSync(rd, { mode: 0o700 }); // user-runtime-dir: mkdir as root ...
    await d.waitForEvent('rundir-appeared', (l) => l.status === 'root-owned');
    expect(stat(sb.privateDir('firefox'))).toBeNull();
    execFileSync('mount', ['-t', 'tmpfs', '-o', `mode=0700,uid=${USER},gid=${GROUP},size=1m`, 'tmpfs', rd]); // ... then the tmpfs
    mounted.push(rd);
    await waitFor(() => isPrivate(sb.privateDir('firefox')), 'dirs in the tmpfs');
    expect(d.events('rundir-refused')).toEqual([]);
    expect(IS_ROOT).toBe(true);
  });

  it.skipIf(!IS_ROOT)('with no /proc at all: private dirs and links made through descriptors alone; watches said unavailable, the rundir read on a timer (needs root: a mount namespace without /proc)', async () => {
    const rd = sb.makeRundir();
    writeFileSync(join(rd, 'kiosk.sock'), 'x');
    chownSync(join(rd, 'kiosk.sock'), USER, GROUP);
    // A link rule by instance name: no snapd needed.
    writeFileSync(sb.config, 'snap-removal-grace: 0\nlinks:\n  - name: kiosk-socket\n    source: kiosk.sock\n    target: "snap.{instance}/kiosk.sock"\n    instances: ["firefox"]\n');
    // The mount table and the processes from files: /proc is gone in the daemon's mount namespace.
    writeFileSync(join(sb.base, 'mountinfo'), readFileSync('/proc/self/mountinfo'));
    mkdirSync(join(sb.base, 'noproc'));
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--mountinfo', join(sb.base, 'mountinfo'), '--proc-root', join(sb.base, 'noproc')], {}, ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'umount -l /proc && test ! -e /proc/self && exec "$@"', 'sh']);
    await d.waitForEvent('daemon-started');
    for (const s of ['firefox', 'hello-world', 'ubuntu-frame_kiosk']) await waitFor(() => isPrivate(sb.privateDir(s)), `snap.${s}`);
    await waitFor(() => lstatSync(join(sb.privateDir('firefox'), 'kiosk.sock'), { throwIfNoEntry: false })?.ino === lstatSync(join(rd, 'kiosk.sock')).ino, 'the link, by inode').catch((e: Error) => {
      throw new Error(`${e.message}\n${d!.lines.map((l) => `${l.event} ${l.msg}`).join('\n')}`);
    });
    // Said once, not once a retry.
    expect(d.events('source-error').filter((l) => String(l.error).includes('cannot watch'))).toHaveLength(1);
    // Unwatched, the rundir is read again on a timer: a private dir removed comes back all the same.
    rmdirSync(sb.privateDir('hello-world'));
    await waitFor(() => isPrivate(sb.privateDir('hello-world')), 'snap.hello-world made again without a watch', 5000);
  });
});
