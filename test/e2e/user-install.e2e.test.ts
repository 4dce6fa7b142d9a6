// A fresh clone installed and run as a normal user with no compiler and an empty $HOME, as a
// new user would: `npm ci` brings koffi's prebuilt native part (nothing is compiled: CC and CXX
// are /bin/false), and `./scripts/run` starts the daemon on its demo tree, sending records to a
// journal socket with MESSAGE_ID and the other fields as fields, not inside the message text.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EVENTS } from '../../src/journal/events.js';
import { JournalReceiver } from '../helpers/journal.js';
import { GROUP, IS_ROOT, USER } from '../helpers/sandbox.js';
import { PROJECT } from './container.js';

let base = '';
let child: ChildProcess | null = null;
let journal: JournalReceiver | null = null;
afterEach(() => {
  if (child?.pid) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  child = null;
  journal?.close();
  journal = null;
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('a normal user with no compiler', () => {
  it.skipIf(!IS_ROOT)('npm ci and ./scripts/run work, and the journal gets fields (needs root to become another user, and the npm registry)', async () => {
    base = mkdtempSync(join(tmpdir(), 'rundird-user-'));
    chmodSync(base, 0o755);
    const src = join(base, 'src');
    const home = join(base, 'home');
    for (const d of [src, home, join(base, 'tmp')]) mkdirSync(d, { mode: 0o755 });
    // What a clone holds: the tracked files, no node_modules, no dist.
    execFileSync('sh', ['-c', `git -C '${PROJECT}' ls-files -z | (cd '${PROJECT}' && tar --null -T - -cf -) | tar -xf - -C '${src}'`]);
    execFileSync('chown', ['-R', `${USER}:${GROUP}`, src, home, join(base, 'tmp')]);
    const env = { PATH: process.env.PATH!, HOME: home, TMPDIR: join(base, 'tmp'), CC: '/bin/false', CXX: '/bin/false', LANG: 'C.UTF-8' };
    const ci = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: src, env, uid: USER, gid: GROUP, encoding: 'utf8', timeout: 300_000 });
    expect(ci.status, `${ci.stdout}\n${ci.stderr}`).toBe(0);
    expect(existsSync(join(src, 'node_modules/koffi/build'))).toBe(false); // nothing was built
    journal = new JournalReceiver(base);
    chmodSync(journal.path, 0o666);
    child = spawn('./scripts/run', ['--log-target', 'journal', '--journal-socket', journal.path], { cwd: src, env, uid: USER, gid: GROUP, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    const started = await journal.waitFor('daemon-started', () => true, 240_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${out}`);
    });
    expect(started).toMatchObject({ MESSAGE_ID: EVENTS['daemon-started'].id, PRIORITY: '6', SYSLOG_IDENTIFIER: 'rundird', LOG_TARGET: 'journal' });
    expect(started.MESSAGE).not.toContain('MESSAGE_ID=');
    // The demo tree's rundir got the demo snaps' private dirs, made by the user's own daemon.
    await journal.waitFor('privdir-created', (e) => e.RUNDIR_UID === String(USER), 30_000);
  }, 600_000);
});
