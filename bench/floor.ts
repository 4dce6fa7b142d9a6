// Node's own floor under the burst and the resync: exactly the system calls rundird's write
// and read paths make, in the same order, through the same Node calls, and nothing else (no
// inotify, no planning, no journal, no records). Measured in the same run as the daemon, so
// that "the daemon takes 2x its floor" holds on a busy machine where the seconds do not, and
// so that a target below the floor is seen to be one.
import { closeSync, constants, fchownSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK;
const FD = `/proc/${process.pid}/fd`;

/**
 * Private dirs for `count` fresh rundirs under `base` (a tmpfs), as rundird's apply makes them:
 * per rundir open, fstat, readdir; per dir mkdir, open, fstat, fchown, close through the
 * rundir's descriptor (src/effects/safefs.ts mkdirProven). Seconds for the whole burst; the
 * rundirs are made (and owned) beforehand and removed after, outside the clock.
 */
export function burstFloor(base: string, count: number, names: readonly string[], baseUid: number): number {
  const dir = join(base, `floor-burst-${process.hrtime.bigint()}`);
  mkdirSync(dir);
  const rundirs = Array.from({ length: count }, (_, i) => {
    const p = join(dir, String(baseUid + i));
    mkdirSync(p, 0o700);
    return p;
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const uid = baseUid + i;
    const r = openSync(rundirs[i]!, DIR_FLAGS);
    fstatSync(r);
    readdirSync(`${FD}/${r}`);
    for (const n of names) {
      const p = `${FD}/${r}/${n}`;
      mkdirSync(p, 0o700);
      const d = openSync(p, DIR_FLAGS);
      if (fstatSync(d).size !== 40) throw new Error(`floor: ${p} is not a new empty dir`);
      fchownSync(d, uid, uid);
      closeSync(d);
    }
    closeSync(r);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(dir, { recursive: true, force: true });
  return Number(s.toFixed(3));
}

/**
 * The reads of a full resync of live rundirs, as rundird's readRundir makes them (src/world/read.ts):
 * per rundir lstat and readdir, then an lstat of each private dir that is there. Seconds.
 */
export function resyncFloor(root: string, uids: readonly number[], names: readonly string[]): number {
  const t0 = process.hrtime.bigint();
  for (const u of uids) {
    const p = join(root, String(u));
    lstatSync(p);
    const present = new Set(readdirSync(p));
    for (const n of names) if (present.has(n)) lstatSync(join(p, n), { throwIfNoEntry: false });
  }
  return Number((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3));
}
