#!/usr/bin/env node
// rundird's executable (dist/bundle/rundird.mjs): it compiles the daemon itself (rundird.cjs,
// bundled from bin/rundird.ts, beside this file) with V8's code cache when systemd gives the
// service a cache directory ($CACHE_DIRECTORY). Parsing and compiling the 1 MiB bundle was
// ~40 ms of a ~230 ms start (docs/benchmark.md). The cache is made once the daemon has done its
// first pass, so that it holds the functions a start runs; V8 rejects one made by another Node
// or with other flags, and it is then made again. What may be read: effects/codeCache.ts.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { CODE_CACHE_FILE, readCodeCache, writeCodeCache } from '../effects/codeCache.js';
import { CODE_CACHE, type CodeCacheHandle } from '../daemon/codeCacheHandle.js';

const body = join(dirname(fileURLToPath(import.meta.url)), 'rundird.cjs');
// systemd gives one path per CacheDirectory= entry, separated by colons; rundird asks for one.
const dir = process.env.CACHE_DIRECTORY?.split(':')[0] || null;
const euid = process.geteuid?.() ?? 0;

/** The daemon compiled, from the cache where there is one that V8 takes. The cache's bytes are not kept. */
function compile(): { script: Script; handle: CodeCacheHandle } {
  const read = dir ? readCodeCache(dir, euid) : null;
  // The bundle is Latin-1 only (scripts/bundle.mjs checks), so this is its exact text, one byte
  // a character; it is the function expression to call (scripts/bundle.mjs), compiled as read.
  const source = readFileSync(body, 'latin1');
  const script = new Script(source, {
    filename: body,
    cachedData: read?.state === 'found' ? read.data : undefined,
  });
  const handle: CodeCacheHandle = {
    state: read === null ? 'off' : read.state === 'found' ? (script.cachedDataRejected ? 'rejected' : 'used') : read.state,
    why: read?.state === 'refused' ? read.why : undefined,
    file: dir === null ? null : join(dir, CODE_CACHE_FILE),
    save: () => {
      if (dir !== null) writeCodeCache(dir, euid, script.createCachedData());
    },
  };
  return { script, handle };
}

const { script, handle } = compile();
(globalThis as Record<symbol, unknown>)[CODE_CACHE] = handle;
const mod = { exports: {} };
(script.runInThisContext() as (...a: unknown[]) => void)(mod.exports, createRequire(body), mod, body, dirname(body));
