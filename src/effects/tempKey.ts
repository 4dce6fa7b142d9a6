// The key that makes rundird's temporary names provable (reconcile/ownTemps.ts): 32 random
// bytes in a root-only file beside the records (`made-TAG.key`, 0600), made once and read at
// every start, so that a leftover of a run before a crash is still recognised. Where it cannot
// be kept (a read-only or full /run), a key for this run alone: leftovers of earlier runs are
// then left alone, as anything not provably rundird's is.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { openTrustedDir, readRegularFileAt, replaceFileAt, withFd } from './safefs.js';

const KEY_BYTES = 32;

export interface TempKey {
  key: Buffer;
  /** Null when kept; else why it is this run's alone. */
  unkept: string | null;
}

export function loadTempKey(path: string, euid: number): TempKey {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    return withFd(openTrustedDir(dirname(path)), (dfd) => {
      const have = readRegularFileAt(dfd, basename(path), KEY_BYTES, (st) => (st.uid !== euid ? `owned by uid ${st.uid}` : (st.mode & 0o077) !== 0 ? 'readable by others' : null));
      if (have !== null && have.length === KEY_BYTES) return { key: have, unkept: null };
      const key = randomBytes(KEY_BYTES);
      replaceFileAt(dfd, basename(path), key);
      return { key, unkept: null };
    });
  } catch (e) {
    return { key: randomBytes(KEY_BYTES), unkept: `${path}: ${(e as Error).message}` };
  }
}
