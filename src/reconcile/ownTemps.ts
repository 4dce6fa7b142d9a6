// The names under which rundird makes a private dir before it is the user's: made root's and
// empty, given its owner and mode, and only then renamed into place (never replacing anything),
// so that a kill at any instant never leaves a root-owned dir at a private dir's name. A name is
// `.rundird-d`, a random nonce and a MAC of the UID and the nonce under a key only rundird reads
// (kept beside its records): after a crash, a leftover is provably rundird's by its name alone,
// whoever owns it by then, while a look-alike a user made is not. Pure.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const PRIVDIR_TEMP_PREFIX = '.rundird-d';
const NONCE_HEX = 16;
const MAC_HEX = 16;
const SHAPE = new RegExp(`^\\${PRIVDIR_TEMP_PREFIX}([0-9a-f]{${NONCE_HEX}})([0-9a-f]{${MAC_HEX}})$`);

/**
 * Random hex from a pool filled 4 KiB at a time: a burst makes a name per private dir, and one
 * randomBytes call each was 340 ms of a 10,000-rundir burst's profile. The bytes are the kernel's
 * random all the same; only the calls are fewer.
 */
let pool = Buffer.alloc(0);
let poolAt = 0;
export function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  const hex = pool.toString('hex', poolAt, poolAt + bytes);
  // Each byte once: what was handed out is not kept.
  pool.fill(0, poolAt, poolAt + bytes);
  poolAt += bytes;
  return hex;
}

const macOf = (key: Buffer, uid: number, nonce: string): string => createHmac('sha256', key).update(`${uid}.${nonce}`).digest('hex').slice(0, MAC_HEX);

/** A new name for a private dir of `uid` being made. */
export function ownTempName(key: Buffer, uid: number): string {
  const nonce = randomHex(NONCE_HEX / 2);
  return `${PRIVDIR_TEMP_PREFIX}${nonce}${macOf(key, uid, nonce)}`;
}

/** Whether `name` is one rundird gave a private dir of `uid` while making it. */
export function isOwnTemp(key: Buffer, uid: number, name: string): boolean {
  const m = SHAPE.exec(name);
  if (!m) return false;
  return timingSafeEqual(Buffer.from(m[2]!), Buffer.from(macOf(key, uid, m[1]!)));
}
