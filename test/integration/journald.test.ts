// The journald destination: native records while journald is there; JSON lines on stdout
// (which systemd also gives to the journal) once it is gone, so that no record is lost.
import { existsSync, unlinkSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENTS } from '../../src/journal/events.js';
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
  it('sends native records, and falls back to stdout when journald goes away', async () => {
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--log-target', 'journal', '--journal-socket', journal.path]);
    const started = await journal.waitFor('daemon-started');
    expect(started).toMatchObject({ MESSAGE_ID: EVENTS['daemon-started'].id, PRIORITY: '6', SYSLOG_IDENTIFIER: 'rundird', LOG_TARGET: 'journal' });
    expect(d.lines.filter((l) => l.event !== 'non-json')).toEqual([]); // nothing on stdout meanwhile

    journal.close();
    if (existsSync(journal.path)) unlinkSync(journal.path);
    sb.makeRundir();
    const rec = await d.waitForEvent('rundir-appeared');
    expect(rec).toMatchObject({ uid: USER, MESSAGE_ID: EVENTS['rundir-appeared'].id });
    expect(d.exitCode).toBeNull();
  });

  it('without unix-dgram: each record on the journal\'s stdout stream with its priority and key fields, and why said once', async () => {
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--log-target', 'journal', '--journal-socket', journal.path], { RUNDIRD_NO_NATIVE: '1' });
    await waitFor(() => d!.lines.some((l) => l.msg.includes('RUNDIRD_EVENT=daemon-started')), 'the start record on stdout');
    const lines = d.lines.map((l) => l.msg);
    expect(lines[0]).toMatch(/^<4>journal fields unavailable \(RUNDIRD_NO_NATIVE=1\).*\[RUNDIRD_EVENT=source-degraded MESSAGE_ID=6e56dfdd4ac44f8ebb52e65898d18089\]/);
    const started = lines.find((l) => l.includes('RUNDIRD_EVENT=daemon-started'))!;
    expect(started).toMatch(new RegExp(`^<6>rundird .* \\[RUNDIRD_EVENT=daemon-started MESSAGE_ID=${EVENTS['daemon-started'].id}\\]$`));
    expect(journal.entries).toEqual([]);
  });

  it('refuses --log-target journal without a journald socket, saying why', async () => {
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--log-target', 'journal', '--journal-socket', `${sb.base}/none.sock`]);
    expect(await d.wait()).toBe(1);
    expect(d.stderr).toContain('does not exist (is systemd-journald running?)');
  });
});
