// sd_notify to a real datagram socket standing in for systemd's (a path, or an abstract name).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { DaemonProcess, Sandbox, waitFor } from '../helpers/sandbox.js';
import { DatagramReceiver } from '../helpers/journal.js';

let sb: Sandbox;
let d: DaemonProcess | null = null;
let got: string[];
let server: DatagramReceiver;
let sockPath: string;
/** Whether the private dir was on disk at the moment READY=1 arrived. */
let dirAtReady: boolean | null;

const onMessage = (m: Buffer) => {
  const text = m.toString();
  if (text.includes('READY=1') && dirAtReady === null) dirAtReady = existsSync(sb.privateDir('alpha'));
  got.push(text);
};

beforeEach(() => {
  sb = new Sandbox();
  sb.addSnap('alpha');
  got = [];
  dirAtReady = null;
  sockPath = join(sb.base, 'notify.sock');
  server = new DatagramReceiver(sockPath, onMessage);
});
afterEach(async () => {
  await d?.stop();
  d = null;
  server.close();
  sb.cleanup();
});

const start = (env: NodeJS.ProcessEnv) => DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot], env);

describe('sd_notify', () => {
  it('says READY=1 with a STATUS line after the first full reconcile, then pings the watchdog', async () => {
    sb.makeRundir();
    d = start({ NOTIFY_SOCKET: sockPath, WATCHDOG_USEC: '100000' });
    await waitFor(() => got.some((m) => m.includes('READY=1')), 'READY=1');
    const ready = got.find((m) => m.includes('READY=1'))!;
    expect(ready).toContain('STATUS=inotify mode: 1 rundirs, 1 snap instances, 0 problems');
    expect(ready).toContain(`MAINPID=${d.child.pid}`);
    // The private dirs exist by the time it says ready.
    expect(dirAtReady).toBe(true);
    await waitFor(() => got.filter((m) => m === 'WATCHDOG=1').length >= 3, 'three watchdog pings');
  });

  it('does not ping a watchdog meant for another process', async () => {
    d = start({ NOTIFY_SOCKET: sockPath, WATCHDOG_USEC: '50000', WATCHDOG_PID: '1' });
    await waitFor(() => got.some((m) => m.includes('READY=1')), 'READY=1');
    // Ten watchdog intervals pass, and then the daemon answers a reload: its timers had their
    // turns before that answer, so a ping meant for it would have come.
    const readyAt = Date.now();
    await waitFor(() => Date.now() - readyAt >= 250, 'ten watchdog intervals');
    d.child.kill('SIGHUP');
    await waitFor(() => got.includes('RELOADING=1') && got.filter((m) => m === 'READY=1').length === 1, 'a reload answered');
    expect(got.filter((m) => m === 'WATCHDOG=1')).toEqual([]);
  });

  it('updates STATUS when what it supervises changes, and says RELOADING and STOPPING', async () => {
    d = start({ NOTIFY_SOCKET: sockPath });
    await waitFor(() => got.some((m) => m.includes('READY=1')), 'READY=1');
    sb.makeRundir();
    await waitFor(() => got.some((m) => m === 'STATUS=inotify mode: 1 rundirs, 1 snap instances, 0 problems'), 'a new STATUS');
    d.child.kill('SIGHUP');
    await waitFor(() => got.includes('RELOADING=1') && got.filter((m) => m === 'READY=1').length === 1, 'RELOADING=1 then READY=1');
    expect(await d.stop()).toBe(0);
    expect(got.some((m) => m.startsWith('STOPPING=1'))).toBe(true);
  });

  it('speaks to an abstract NOTIFY_SOCKET (@name)', async () => {
    const name = `@rundird-test-notify-${process.pid}-${Date.now()}`;
    const abstract = new DatagramReceiver(name, onMessage);
    try {
      d = start({ NOTIFY_SOCKET: name, WATCHDOG_USEC: '200000' });
      await waitFor(() => got.some((m) => m.includes('READY=1')), 'READY=1 on the abstract socket');
      expect(got.find((m) => m.includes('READY=1'))).toContain(`MAINPID=${d.child.pid}`);
      await waitFor(() => got.filter((m) => m === 'WATCHDOG=1').length >= 2, 'watchdog pings');
      await d.stop();
      await waitFor(() => got.some((m) => m.startsWith('STOPPING=1')), 'STOPPING=1');
    } finally {
      abstract.close();
    }
  });

  it('runs without NOTIFY_SOCKET, and says why it cannot use a malformed one', async () => {
    d = start({ NOTIFY_SOCKET: 'relative/path' });
    await d.waitForEvent('daemon-started');
    expect(d.lines.some((l) => String(l.msg).includes('neither a path nor an abstract socket'))).toBe(true);
  });
});
