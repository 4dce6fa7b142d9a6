// rundird's temporary names for private dirs being made: provable by the name alone, under its key.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isOwnTemp, ownTempName, PRIVDIR_TEMP_PREFIX } from '../../src/reconcile/ownTemps.js';

describe('own temporary names', () => {
  const key = randomBytes(32);
  it('are recognised for their UID under their key, and nothing else is', () => {
    const n = ownTempName(key, 1000);
    expect(n).toMatch(new RegExp(`^\\${PRIVDIR_TEMP_PREFIX}[0-9a-f]{32}$`));
    expect(isOwnTemp(key, 1000, n)).toBe(true);
    expect(isOwnTemp(key, 1001, n)).toBe(false); // another user's rundir
    expect(isOwnTemp(randomBytes(32), 1000, n)).toBe(false); // another key: an earlier run's, unprovable
    expect(isOwnTemp(key, 1000, PRIVDIR_TEMP_PREFIX + '0'.repeat(32))).toBe(false); // a look-alike
    expect(isOwnTemp(key, 1000, n.slice(0, -1) + (n.endsWith('0') ? '1' : '0'))).toBe(false);
    expect(isOwnTemp(key, 1000, n + '0')).toBe(false);
    expect(ownTempName(key, 1000)).not.toBe(n); // a fresh nonce each time
  });
});
