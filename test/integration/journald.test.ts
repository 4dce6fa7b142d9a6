// The journald destination: native records on a real datagram socket; while the journal does
// not read (congested, or restarting) records wait in a bounded queue and arrive once it reads
// again, the dropped ones counted; a record larger than a datagram goes in a sealed memfd.
import { existsSync, unlinkSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENTS } from '../../src/journal/events.js';
import { journaldDestination, MAX_QUEUE } from '../../src/journal/journald.js';
import * as libc from '../../src/sys/libc.js';
import { JournalReceiver } from '../helpers/journal.js';
import { DaemonProcess, Sandbox, USER, waitFor } from '../helpers/sandbox.js';

let sb: Sandbox;
let journal: JournalReceiver;
let d: DaemonProcess | null = null;

beforeEach(() => {
  sb = new Sandbox();
  journal = new JournalReceiver(sb.base);
});
afterEach(async () => {
  await d?.stop();
  d = null;
  journal.close();
  sb.cleanup();
});

describe('journald destination', () => {
  it('sends native records; while journald is away they wait, and arrive once it is back', async () => {
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--log-target', 'journal', '--journal-socket', journal.path]);
    const started = await journal.waitFor('daemon-started');
    expect(started).toMatchObject({ MESSAGE_ID: EVENTS['daemon-started'].id, PRIORITY: '6', SYSLOG_IDENTIFIER: 'rundird', LOG_TARGET: 'journal' });
    expect(d.lines.filter((l) => l.event !== 'non-json')).toEqual([]); // nothing on stdout meanwhile

    // journald restarts: its socket is gone for a while, then bound anew at the same path.
    journal.close();
    if (existsSync(journal.path)) unlinkSync(journal.path);
    sb.addSnap('kiosk');
    sb.makeRundir();
    await waitFor(() => existsSync(sb.privateDir('kiosk')), 'the rundir served meanwhile');
    journal = new JournalReceiver(sb.base);
    const rec = await journal.waitFor('rundir-appeared');
    expect(rec).toMatchObject({ RUNDIR_UID: String(USER), MESSAGE_ID: EVENTS['rundir-appeared'].id });
    expect(d.lines.filter((l) => l.event !== 'non-json')).toEqual([]); // nothing went to stdout instead
    expect(d.exitCode).toBeNull();
  });

  it('a journal that stops reading: nothing blocks, the oldest past the bound are dropped, and their number said once it reads', async () => {
    journal.close();
    unlinkSync(journal.path);
    const stalled = new JournalReceiver(sb.base, false);
    journal = stalled;
    const dest = journaldDestination(stalled.path);
    try {
      const total = MAX_QUEUE + 3000;
      for (let i = 0; i < total; i++) dest.write(JSON.stringify({ level: 'info', msg: `record ${i}`, event: 'test-record', n: i }) + '\n');
      const st = dest.stats();
      // The socket's own queue took the first ones; the rest wait, at most MAX_QUEUE of them.
      expect(st.queued).toBe(MAX_QUEUE);
      expect(st.dropped).toBeGreaterThan(0);
      expect(st.sent + st.queued + st.dropped).toBe(total);
      stalled.sock.resume();
      await waitFor(() => stalled.entries.some((e) => e.RUNDIRD_DROPPED !== undefined), 'the dropped notice');
      const got = stalled.byEvent('test-record').map((e) => Number(e.N));
      const notice = stalled.entries.find((e) => e.RUNDIRD_DROPPED !== undefined)!;
      expect(notice).toMatchObject({ PRIORITY: '4', SYSLOG_IDENTIFIER: 'rundird', RUNDIRD_DROPPED: String(st.dropped) });
      // What arrived is everything but the dropped ones, in order: the first ones and the newest.
      expect(got.length + st.dropped).toBe(total);
      expect(got).toEqual([...got].sort((a, b) => a - b));
      expect(got.at(-1)).toBe(total - 1);
      expect(dest.stats()).toMatchObject({ queued: 0, dropped: 0 });
    } finally {
      dest.close();
    }
  });

  it('a record larger than a datagram arrives whole, in a sealed memfd', async () => {
    const dest = journaldDestination(journal.path);
    try {
      // 40 fields of 16 KiB: 640 KiB, more than a datagram may carry.
      const big: Record<string, string> = { level: 'warn', msg: 'big', event: 'big-record' };
      for (let i = 0; i < 40; i++) big[`part_${i}`] = String(i % 10).repeat(16 * 1024);
      dest.write(JSON.stringify(big) + '\n');
      const rec = await journal.waitFor('big-record');
      expect(rec.RUNDIRD_PART_39 ?? rec.PART_39).toBe('9'.repeat(16 * 1024));
      expect(rec).toMatchObject({ MESSAGE: 'big', PRIORITY: '4' });
      const want = libc.F_SEAL_SEAL | libc.F_SEAL_SHRINK | libc.F_SEAL_GROW | libc.F_SEAL_WRITE;
      expect(journal.sock.seals).toEqual([want]);
    } finally {
      dest.close();
    }
  });

  it('refuses --log-target journal without a journald socket, saying why', async () => {
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--log-target', 'journal', '--journal-socket', `${sb.base}/none.sock`]);
    expect(await d.wait()).toBe(1);
    expect(d.stderr).toContain('does not exist (is systemd-journald running?)');
  });
});
