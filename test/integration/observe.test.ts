// --observe-only: what a strictly confined snap on Ubuntu Core can do (docs/ubuntu-core.md).
// Lifecycle from logind (the double), the mount table, and warnings from the kernel's socket
// table when other processes' fds cannot be read; nothing is ever written into a rundir.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCtl } from '../helpers/ctl.js';
import { FakeLogind, PrivateBus } from '../helpers/dbus.js';
import { ProcFixture } from '../helpers/procfs.js';
import { DaemonProcess, Sandbox, USER } from '../helpers/sandbox.js';

let sb: Sandbox;
let bus: PrivateBus;
let logind: FakeLogind;
let d: DaemonProcess | null = null;

beforeEach(async () => {
  sb = new Sandbox();
  bus = new PrivateBus(sb.base);
  await bus.start();
  logind = await FakeLogind.start(bus.address, sb.runtimeRoot, 'systemd256');
});
afterEach(async () => {
  await d?.stop();
  d = null;
  await logind.kill();
  await bus.stop();
  sb.cleanup();
});

describe('--observe-only', () => {
  it('writes nothing, and still warns about a socket served outside any session, its server unknown', async () => {
    sb.addSnap('kiosk');
    writeFileSync(sb.config, `snap-removal-grace: 0\nrescue:\n  ${USER}: [restore, linger]\n`);
    const rd = sb.makeRundir();
    // A /proc as a confined snap sees it: no process it can read, the socket table readable.
    const proc = new ProcFixture(join(sb.base, 'proc'));
    proc.socket(4711, join(rd, 'wayland-0'));
    const api = join(sb.base, 'api.sock');
    d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot, '--proc-root', proc.root, '--api-socket', api, '--observe-only'], { DBUS_SYSTEM_BUS_ADDRESS: bus.address });
    const started = await d.waitForEvent('daemon-started');
    expect(started.msg).toContain('observe-only (writes nothing)');
    const w = await d.waitForEvent('reliant-without-linger');
    expect(w.subject).toBe(`the server of ${join(rd, 'wayland-0')}`);
    expect(w.msg).toContain(`listening on ${join(rd, 'wayland-0')}`);
    // Nothing written: no private dir, no rescue directory, no linger asked for.
    expect(readdirSync(rd)).toEqual([]);
    expect(existsSync(join(sb.runtimeRoot, '.rundird-rescue'))).toBe(false);
    const r = await runCtl(['--api-socket', api, 'rescue', String(USER), '--linger']);
    expect(r.code).toBe(70);
    expect(r.err).toContain('observe-only');
    await logind.cmd({ op: 'linger-calls' });
    expect(logind.lingerCalls).toEqual([]);
    expect(d.events('privdir-created')).toEqual([]);
  }, 30_000);
});
