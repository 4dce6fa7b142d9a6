// Performs a plan. The only module that writes to the filesystem. Every step re-checks what
// the planner assumed, through descriptors, because users own the directories written into
// and can swap any entry between the read and the write.
import type { Action, Plan } from '../reconcile/planner.js';
import { PRIVATE_DIR_MODE } from '../reconcile/planner.js';
import type { CreatedRecord } from '../world/types.js';
import { close, fchmod, fchown, fstat, lstatAt, mkdirAt, openDirAt, rmdirAt, withFd } from './safefs.js';

export type Outcome =
  | { action: Action; ok: true; record?: CreatedRecord }
  | { action: Action; ok: false; code: string; detail: string; retry: boolean };

export interface ApplyResult {
  outcomes: Outcome[];
  /** The rundir changed under the plan: read again and re-plan. */
  stale: boolean;
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code ?? 'EUNKNOWN';

function fail(action: Action, code: string, detail: string, retry = false): Outcome {
  return { action, ok: false, code, detail, retry };
}

function mkdirPrivate(rundirFd: number, a: Extract<Action, { op: 'mkdir' }>, selfUid: number): Outcome {
  try {
    mkdirAt(rundirFd, a.name, PRIVATE_DIR_MODE);
  } catch (e) {
    // Something appeared since the read: a fresh read decides what it is.
    if (errCode(e) === 'EEXIST') return fail(a, 'EEXIST', 'appeared since it was read', true);
    return fail(a, errCode(e), (e as Error).message);
  }
  let fd: number;
  try {
    fd = openDirAt(rundirFd, a.name);
  } catch (e) {
    // Swapped for a symlink or a non-directory between mkdir and open.
    return fail(a, errCode(e), `replaced right after mkdir (${errCode(e)}); left untouched`, true);
  }
  return withFd(fd, () => {
    const st = fstat(fd);
    if (st.uid !== selfUid && st.uid !== a.owner) {
      return fail(a, 'EPERM', `replaced right after mkdir by a directory of uid ${st.uid}; left untouched`, true);
    }
    fchown(fd, a.owner, a.group);
    // chown clears no bits on a directory, and with any usual umask mkdir gave 0700 already.
    if ((st.mode & 0o7777) !== PRIVATE_DIR_MODE) fchmod(fd, PRIVATE_DIR_MODE);
    return { action: a, ok: true as const, record: { ino: st.ino, dev: st.dev } };
  });
}

function fixPrivate(rundirFd: number, a: Extract<Action, { op: 'fix' }>, selfUid: number): Outcome {
  let fd: number;
  try {
    fd = openDirAt(rundirFd, a.name);
  } catch (e) {
    return fail(a, errCode(e), `changed since it was read (${errCode(e)}); left untouched`, true);
  }
  return withFd(fd, () => {
    const st = fstat(fd);
    if (st.ino !== a.ino || st.dev !== a.dev) return fail(a, 'ESTALE', 'replaced since it was read', true);
    if (st.uid !== a.owner && st.uid !== selfUid) return fail(a, 'EPERM', `owned by uid ${st.uid}; left untouched`);
    if (st.uid !== a.owner || st.gid !== a.group) fchown(fd, a.owner, a.group);
    if ((st.mode & 0o7777) !== PRIVATE_DIR_MODE) fchmod(fd, PRIVATE_DIR_MODE);
    return { action: a, ok: true as const };
  });
}

function rmdirOwn(rundirFd: number, a: Extract<Action, { op: 'rmdir' }>): Outcome {
  const st = lstatAt(rundirFd, a.name);
  if (!st) return { action: a, ok: true };
  if (!st.isDirectory() || st.ino !== a.ino || st.dev !== a.dev) {
    return fail(a, 'ESTALE', 'no longer the directory rundird made; left in place');
  }
  try {
    rmdirAt(rundirFd, a.name);
    return { action: a, ok: true };
  } catch (e) {
    const c = errCode(e);
    if (c === 'ENOTEMPTY' || c === 'EEXIST') return fail(a, 'ENOTEMPTY', 'not empty; left in place');
    return fail(a, c, (e as Error).message);
  }
}

/**
 * Applies one UID's plan inside the runtime root (an open descriptor). The rundir is opened
 * without following symlinks and must still be the directory the plan was made for.
 */
export function applyPlan(rootFd: number, p: Plan, selfUid: number): ApplyResult {
  const writes = p.actions.filter((a) => a.op !== 'forget');
  const outcomes: Outcome[] = p.actions.filter((a) => a.op === 'forget').map((action) => ({ action, ok: true as const }));
  if (writes.length === 0 || p.rundir === null) return { outcomes, stale: false };
  let rundirFd: number;
  try {
    rundirFd = openDirAt(rootFd, String(p.uid));
  } catch {
    return { outcomes, stale: true };
  }
  try {
    const st = fstat(rundirFd);
    if (st.ino !== p.rundir.ino || st.dev !== p.rundir.dev || st.uid !== p.uid) return { outcomes, stale: true };
    let stale = false;
    for (const a of writes) {
      let o: Outcome;
      try {
        if (a.op === 'mkdir') o = mkdirPrivate(rundirFd, a, selfUid);
        else if (a.op === 'fix') o = fixPrivate(rundirFd, a, selfUid);
        else o = rmdirOwn(rundirFd, a as Extract<Action, { op: 'rmdir' }>);
      } catch (e) {
        o = fail(a, errCode(e), (e as Error).message);
      }
      if (!o.ok && o.retry) stale = true;
      outcomes.push(o);
    }
    return { outcomes, stale };
  } finally {
    close(rundirFd);
  }
}
