// rundird on the other architectures Ubuntu Core runs on: Debian's own nodejs for arm64 and
// armhf (with its libraries, scripts/arch-root) under qemu-user, and rundird's package for that
// architecture (koffi's prebuilt native part for it, nothing compiled). The real daemon makes a
// private dir through libc's calls with the right owner and mode, and sends native journal
// records (fields, not text) to a socket read here, on the host.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EVENTS } from '../../src/journal/events.js';
import { JournalReceiver } from '../helpers/journal.js';
import { GROUP, IS_ROOT, USER, hasCommand, waitFor } from '../helpers/sandbox.js';
import { PROJECT } from './container.js';

const QEMU = { arm64: 'qemu-aarch64', armhf: 'qemu-arm' } as const;
const has = hasCommand;
// In CI qemu-user is installed (.ci/run): a missing one is a failure there, not a skip.
const canRun = (arch: keyof typeof QEMU) => IS_ROOT && (has(QEMU[arch]) || !!process.env.CI);

let child: ChildProcess | null = null;
let base = '';
let journal: JournalReceiver | null = null;
afterEach(() => {
  child?.kill('SIGKILL');
  child = null;
  journal?.close();
  journal = null;
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('other architectures, under qemu-user', () => {
  for (const arch of ['arm64', 'armhf'] as const) {
    it.skipIf(!canRun(arch))(`${arch}: the packaged daemon makes a private dir with the user's owner and sends native journal records (needs root and ${QEMU[arch]})`, async () => {
      const root = execFileSync(join(PROJECT, 'scripts/arch-root'), [arch], { cwd: PROJECT, encoding: 'utf8', timeout: 300_000 }).trim().split('\n').pop()!;
      const abs = join(PROJECT, root);
      // Debian's node of that architecture (ELF e_machine: 183 aarch64, 40 ARM), not this machine's.
      expect(readFileSync(join(abs, 'usr/bin/node')).readUInt16LE(18)).toBe(arch === 'arm64' ? 183 : 40);
      base = mkdtempSync(join(tmpdir(), `rundird-${arch}-`));
      const rd = join(base, 'run/user', String(USER));
      mkdirSync(rd, { recursive: true, mode: 0o700 });
      chownSync(rd, USER, GROUP);
      mkdirSync(join(base, 'snap/hello/x1'), { recursive: true });
      symlinkSync('x1', join(base, 'snap/hello/current'));
      journal = new JournalReceiver(base);
      const app = join(abs, 'usr/lib/rundird/dist/bundle/rundird.mjs');
      child = spawn(QEMU[arch], ['-L', abs, join(abs, 'usr/bin/node'), app, '--no-logind', '--config', '/dev/null', '--runtime-root', join(base, 'run/user'), '--snap-root', join(base, 'snap'), '--api-socket', join(base, 'api.sock'), '--log-target', 'journal', '--journal-socket', journal.path], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
      const started = await journal.waitFor('daemon-started', () => true, 60_000).catch((e: Error) => {
        throw new Error(`${e.message}\n${err}`);
      });
      expect(started).toMatchObject({ MESSAGE_ID: EVENTS['daemon-started'].id, PRIORITY: '6', SYSLOG_IDENTIFIER: 'rundird', LOG_TARGET: 'journal' });
      await waitFor(() => existsSync(join(rd, 'snap.hello')), 'snap.hello made', 30_000);
      const st = lstatSync(join(rd, 'snap.hello'));
      expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, dir: st.isDirectory() }).toEqual({ uid: USER, gid: GROUP, mode: 0o700, dir: true });
      const made = await journal.waitFor('privdir-created');
      expect(made).toMatchObject({ MESSAGE_ID: EVENTS['privdir-created'].id, RUNDIR_UID: String(USER), SNAP_INSTANCE: 'hello' });
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => child!.on('exit', (c) => r(c)));
      expect(code, err).toBe(0);
      await journal.waitFor('daemon-stopping');
    }, 300_000);
  }
});
