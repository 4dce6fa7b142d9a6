// The daemon's code cache ($CACHE_DIRECTORY, bin/rundird-loader.ts): made after the first pass,
// used at the next start, made again when V8 rejects it. It is code run as root, so one that
// another user could have written is never read, and never written through.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, chownSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { DaemonProcess, Sandbox, USER, rootOnly, stat, waitFor, IS_ROOT } from '../helpers/sandbox.js';

let sb: Sandbox;
let d: DaemonProcess | null;
let cache: string;
const FILE = 'rundird.code-cache';

beforeEach(() => {
  sb = new Sandbox();
  sb.addSnap('hello-world');
  cache = join(sb.base, 'cache');
  mkdirSync(cache, { mode: 0o755 });
  d = null;
});
afterEach(async () => {
  await d?.stop();
  sb.cleanup();
});

async function start(env: NodeJS.ProcessEnv = { CACHE_DIRECTORY: cache }): Promise<{ code_cache?: unknown }> {
  await d?.stop();
  d = DaemonProcess.spawn(['--config', sb.config, '--runtime-root', sb.runtimeRoot, '--snap-root', sb.snapRoot], env);
  return d.waitForEvent('daemon-started');
}

/** The daemon works as it should, whatever happened to its cache: a rundir gets its private dir. */
async function works(): Promise<void> {
  if (stat(sb.rundir()) === null) sb.makeRundir();
  await waitFor(() => stat(sb.privateDir('hello-world'))?.kind === 'dir', 'private dir');
}

describe('code cache', () => {
  it('is made after the first pass, used at the next start, and made again when V8 rejects it', async () => {
    expect((await start()).code_cache).toBe('absent');
    await waitFor(() => stat(join(cache, FILE))?.kind === 'file', 'the cache written');
    expect(stat(join(cache, FILE))?.mode).toBe(0o600);
    expect((await start()).code_cache).toBe('used');
    await works();
    // Not one of V8's (another Node, other flags, or damaged): rejected, made again.
    writeFileSync(join(cache, FILE), 'not a code cache');
    expect((await start()).code_cache).toBe('rejected');
    await waitFor(() => readFileSync(join(cache, FILE)).length > 1000, 'the cache made again');
    expect((await start()).code_cache).toBe('used');
    expect(d!.events('code-cache-unavailable')).toHaveLength(0);
  });

  it('is off without a cache directory, and a missing one is said, not fatal', async () => {
    expect((await start({ CACHE_DIRECTORY: '' })).code_cache).toBe('off');
    const gone = join(sb.base, 'no-such-dir');
    expect((await start({ CACHE_DIRECTORY: gone })).code_cache).toBe('absent');
    const e = await d!.waitForEvent('code-cache-unavailable');
    expect(e.error).toMatch(/ENOENT/);
    await works();
  });
});

describe('code cache attacks (a real unprivileged UID)', () => {
  const refused = async (what: RegExp) => {
    expect((await start()).code_cache).toBe('refused');
    const e = await d!.waitForEvent('code-cache-unavailable');
    expect(e.error).toMatch(what);
    await works();
  };

  it.skipIf(!IS_ROOT)('a cache file the user owns is not read, and not replaced (needs root: files of another user)', async () => {
    writeFileSync(join(cache, FILE), 'planted');
    chownSync(join(cache, FILE), USER, USER);
    // No sleep: the refusal is said where rundird decides to keep nothing, and `refused` then
    // waits on its private dir, so a save queued after the refusal would already have landed
    // (checked: one queued there makes this test fail).
    await refused(/owned by uid 1000/);
    expect(readFileSync(join(cache, FILE), 'utf8')).toBe('planted');
  });

  it.skipIf(!IS_ROOT)('a cache directory the user owns, or anyone may write, is not read from or written into (needs root: files of another user)', async () => {
    chownSync(cache, USER, USER);
    await refused(/owned by uid 1000/);
    chownSync(cache, 0, 0);
    chmodSync(cache, 0o777);
    await refused(/writable by others \(mode 0777\)/);
    expect(execFileSync('ls', ['-A', cache]).toString()).toBe('');
  });

  it.skipIf(!IS_ROOT)('a symlink at the cache path or as the directory is not followed, and its target is left alone (needs root: files of another user)', async () => {
    const target = join(sb.base, 'target');
    writeFileSync(target, 'root file');
    symlinkSync(target, join(cache, FILE));
    await refused(/symbolic link/);
    await new Promise((r) => setTimeout(r, 300));
    expect(readFileSync(target, 'utf8')).toBe('root file');
    expect(stat(join(cache, FILE))?.kind).toBe('symlink');
    const real = join(sb.base, 'real-cache');
    mkdirSync(real, { mode: 0o755 });
    const linked = join(sb.base, 'linked-cache');
    symlinkSync(real, linked);
    expect((await start({ CACHE_DIRECTORY: linked })).code_cache).toBe('refused');
    await new Promise((r) => setTimeout(r, 300));
    expect(execFileSync('ls', ['-A', real]).toString()).toBe('');
  });

  it.skipIf(!IS_ROOT)('a FIFO at the cache path does not block the start (needs root: mkfifo as root)', async () => {
    execFileSync('mkfifo', [join(cache, FILE)]);
    await refused(/not a regular file/);
  });
});
