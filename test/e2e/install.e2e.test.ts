// Installs anywhere (issues 14, 24): a fresh clone by a normal user with an empty $HOME, no
// nodedir and no compiler gets through `npm ci` (koffi's native part comes prebuilt; nothing is
// compiled), and the README's run command starts the daemon and prints its first record; with
// --journal-socket its records reach a journal socket with MESSAGE_ID and the other fields as
// fields. The package builds the same way. Slow (a real npm install from the registry): in the
// e2e suite.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EVENTS } from '../../src/journal/events.js';
import { JournalReceiver } from '../helpers/journal.js';
import { waitFor } from '../helpers/sandbox.js';
import { PROJECT } from './container.js';

const IS_ROOT = process.getuid?.() === 0;
const USER = 1000;
const base = mkdtempSync(join(tmpdir(), 'rundird-install-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/**
 * PATH for a machine with Node and npm but no compiler: a directory with links to what npm and
 * the scripts use, and no cc, c++, g++, make or python.
 */
function noCompilerPath(): string {
  const bin = join(base, 'bin');
  mkdirSync(bin);
  const keep = ['node', 'npm', 'npx', 'sh', 'bash', 'env', 'git', 'id', 'mkdir', 'chmod', 'ln', 'cat', 'dirname', 'basename', 'rm', 'cp', 'mv', 'ls', 'sed', 'grep', 'tr', 'uname', 'cut', 'head', 'tail', 'sort', 'find', 'xargs', 'tar', 'gzip', 'findmnt', 'timeout', 'sleep', 'date', 'readlink', 'realpath', 'touch', 'test', '[', 'printf', 'echo', 'true', 'false', 'wc', 'du', 'dpkg', 'dpkg-deb', 'strip', 'install', 'chown', 'stat'];
  for (const b of keep) {
    const where = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => join(d, b)).find((p) => {
      try {
        execFileSync('test', ['-x', p]);
        return true;
      } catch {
        return false;
      }
    });
    if (where) symlinkSync(where, join(bin, b));
  }
  for (const cc of ['cc', 'gcc', 'g++', 'c++', 'make', 'python3']) expect(() => execFileSync(join(bin, 'sh'), ['-c', `command -v ${cc}`], { env: { PATH: bin } })).toThrow();
  return bin;
}

describe.skipIf(!IS_ROOT)('installs without a compiler', () => {
  let path = '';
  const env = (home: string) => ({ PATH: path, HOME: home, TMPDIR: home, npm_config_nodedir: '/nonexistent', npm_config_cache: join(home, '.npm'), npm_config_update_notifier: 'false', TERM: 'dumb' });

  it('a normal user: fresh clone, empty $HOME, no nodedir, no compiler; ./scripts/run prints its first record', async () => {
    path = noCompilerPath();
    chmodSync(base, 0o755);
    const home = join(base, 'home');
    mkdirSync(home);
    // The project's repository belongs to root: git lets another user read it once told to.
    writeFileSync(join(home, '.gitconfig'), '[safe]\n\tdirectory = *\n');
    chownSync(home, USER, USER);
    const clone = join(home, 'rundird');
    execFileSync('git', ['clone', '-q', PROJECT, clone], { uid: USER, gid: USER, env: env(home) });
    // The README's run command, as that user; it runs until stopped.
    const run = spawn('./scripts/run', [], { cwd: clone, uid: USER, gid: USER, env: env(home), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    run.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    run.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const until = Date.now() + 240_000;
    while (!out.includes('daemon-started') && run.exitCode === null && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    if (run.exitCode === null) {
      run.kill('SIGTERM');
      await new Promise((r) => run.once('exit', r));
    }
    expect(out, `stdout:\n${out}\nstderr:\n${err.slice(-3000)}`).toContain('daemon-started');
    // Nothing was compiled: koffi's part is the prebuilt one of its npm package.
    expect(readdirSync(join(clone, 'node_modules/koffi'))).not.toContain('build');
    expect(readdirSync(join(clone, 'node_modules/@koromix'))).toContain(`koffi-linux-${process.arch}`);
    expect(err).toContain('not root, so running on a demo tree');

    // The same clone, with a journal socket: the records carry their fields as fields.
    const journal = new JournalReceiver(base);
    try {
      chmodSync(journal.path, 0o666);
      const j = spawn('./scripts/run', ['--log-target', 'journal', '--journal-socket', journal.path], { cwd: clone, uid: USER, gid: USER, env: env(home), stdio: ['ignore', 'pipe', 'pipe'] });
      let jerr = '';
      j.stderr!.on('data', (b: Buffer) => (jerr += b.toString()));
      try {
        const started = await journal.waitFor('daemon-started', () => true, 120_000).catch((e: Error) => {
          throw new Error(`${e.message}\n${jerr.slice(-3000)}`);
        });
        expect(started).toMatchObject({ MESSAGE_ID: EVENTS['daemon-started'].id, PRIORITY: '6', SYSLOG_IDENTIFIER: 'rundird', LOG_TARGET: 'journal' });
        expect(started.MESSAGE).not.toContain('MESSAGE_ID=');
        // And a record about the user's own (demo) rundir, its UID a field of its own.
        await waitFor(() => journal.entries.some((e) => e.RUNDIR_UID === String(USER) && e.MESSAGE_ID !== undefined), 'a record with RUNDIR_UID', 30_000);
      } finally {
        j.kill('SIGTERM');
        await new Promise((r) => j.once('exit', r));
      }
    } finally {
      journal.close();
    }
  }, 400_000);

  it('the package builds there too, with koffi and nothing compiled', () => {
    const home = join(base, 'pkg-home');
    mkdirSync(home);
    const clone = join(base, 'pkg');
    execFileSync('git', ['-c', 'safe.directory=*', 'clone', '-q', PROJECT, clone]);
    // The build itself needs the dev dependencies (TypeScript): installed without a compiler as well.
    execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: clone, env: env(home), stdio: 'ignore', timeout: 240_000 });
    const deb = execFileSync('./scripts/package', { cwd: clone, env: env(home), encoding: 'utf8', timeout: 240_000 }).trim().split('\n').pop()!;
    const files = execFileSync('dpkg-deb', ['-c', join(clone, deb)], { encoding: 'utf8' });
    expect(files).toContain('usr/lib/rundird/dist/bundle/rundird.mjs');
    expect(files).toContain('usr/lib/rundird/dist/bundle/rundird.cjs');
    expect(files).not.toContain('node_modules/unix-dgram/');
    expect(files).toMatch(/node_modules\/@koromix\/koffi-linux-[a-z0-9]+\/linux_[a-z0-9]+\/koffi\.node/);
    writeFileSync(join(base, 'deb-files.txt'), files);
  }, 300_000);
});
