// On a terminal (a real pty, through script(1)) the daemon prints one readable line per record
// and rundirctl colours its tables; piped, or with NO_COLOR / --log-format json, they do not.
import { execFileSync, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatRecord } from '../../src/journal/pretty.js';
import { formatStatus } from '../../src/cli/rundirctl.js';
import { CTL } from '../helpers/ctl.js';
import { DaemonProcess, Sandbox, waitFor } from '../helpers/sandbox.js';

const DAEMON = resolve(import.meta.dirname, '../../dist/bundle/rundird.mjs');
const ESC = '\x1b[';
let sb: Sandbox;
let d: DaemonProcess | null = null;

beforeEach(() => {
  sb = new Sandbox();
});
afterEach(async () => {
  await d?.stop();
  d = null;
  sb.cleanup();
});

/** Runs a command in a pty for a moment; returns what the terminal showed. */
function onTerminal(cmd: string, env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...process.env, TERM: 'xterm', ...env }, timeout: 20_000 });
  return r.stdout;
}

describe('on a terminal', () => {
  const args = () => `--config ${sb.config} --runtime-root ${sb.runtimeRoot} --snap-root ${sb.snapRoot} --api-socket ${join(sb.base, 'api.sock')}`;

  it('the daemon prints readable lines, not JSON; the first says there is no bus, at info, once', () => {
    const out = onTerminal(`DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/bus timeout -s TERM 2 ${process.execPath} ${DAEMON} ${args()}`);
    const lines = out.split(/\r?\n/).filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const l of lines) expect(l.trimStart().startsWith('{'), l).toBe(false);
    expect(lines[0]).toMatch(/INFO .*mode-changed.*no system bus at \/nonexistent\/bus: running in inotify mode/);
    expect(out).not.toContain('USocket');
    expect(out).toContain('daemon-started');
    expect(out).toContain(ESC); // coloured
    expect(onTerminal(`NO_COLOR=1 timeout -s TERM 2 ${process.execPath} ${DAEMON} ${args()}`)).not.toContain(ESC);
    // Asked for JSON, or piped: JSON lines.
    const json = onTerminal(`timeout -s TERM 2 ${process.execPath} ${DAEMON} ${args()} --log-format json`).split(/\r?\n/).filter(Boolean);
    expect(json.every((l) => l.startsWith('{'))).toBe(true);
  }, 30_000);

  it('rundirctl status: colour on a terminal, none when piped or with NO_COLOR', async () => {
    d = await DaemonProcess.start(sb, ['--api-socket', join(sb.base, 'api.sock')]);
    sb.makeRundir();
    await waitFor(() => d!.events('rundir-appeared').length > 0, 'a rundir');
    const cmd = `${process.execPath} ${CTL} --api-socket ${join(sb.base, 'api.sock')} status`;
    expect(onTerminal(cmd)).toContain(ESC);
    expect(onTerminal(cmd, { NO_COLOR: '1' })).not.toContain(ESC);
    let piped = '';
    try {
      piped = execFileSync(process.execPath, [CTL, '--api-socket', join(sb.base, 'api.sock'), 'status'], { encoding: 'utf8' });
    } catch (e) {
      piped = (e as { stdout: string }).stdout;
    }
    expect(piped).toContain('LIFECYCLE');
    expect(piped).not.toContain(ESC);
  }, 30_000);
});

describe('the formats', () => {
  it('a record: time, level, event, message, and key fields not already in the message', () => {
    const line = JSON.stringify({ level: 'warn', time: '2026-11-30T20:00:01.234Z', event: 'link-refused', msg: '/run/user/1000/x: occupied', uid: 1000, reason: 'link-target-occupied', MESSAGE_ID: 'abc' });
    expect(formatRecord(line, false)).toBe('20:00:01.234 WARN  link-refused /run/user/1000/x: occupied  (reason=link-target-occupied)');
    // A field whose value the message does not hold is shown.
    expect(formatRecord(JSON.stringify({ level: 'info', time: 'x', msg: 'hello', uid: 7 }), false)).toContain('(uid=7)');
    expect(formatRecord('not json', false)).toBe('not json');
  });

  it('a status table keeps its columns aligned with colour on', () => {
    const s = { version: '1', pid: 1, summary: 'x', runtimeRoot: '/run/user', warnings: [], rundirs: [{ uid: 1000, path: '/run/user/1000', lifecycle: 'live', status: 'tmpfs', linger: false, privateDirs: [], links: [], reliants: 0, warnings: 0, problems: [] }] };
    const plain = formatStatus(s, false);
    const coloured = formatStatus(s, true);
    // Without the colour codes the two are the same text.
    expect(coloured.replace(/\x1b\[[0-9;]*m/g, '')).toBe(plain);
    expect(coloured).toContain(`${ESC}32mlive`);
  });
});
