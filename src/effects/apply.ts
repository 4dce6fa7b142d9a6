// Performs a plan. The only module that writes to the filesystem. Every step re-checks what
// the planner assumed, through descriptors, because users own the directories written into
// and can swap any entry between the read and the write.
import type { Action, Plan } from '../reconcile/planner.js';
import { PRIVATE_DIR_MODE } from '../reconcile/planner.js';
import type { CreatedRecord } from '../world/types.js';
import type { LinkAction } from '../reconcile/links.js';
import { applyLinks, type LinkOutcome, type MountRoots } from './links.js';
import { close, dirFs, fchmod, fchown, lstatAt, mkdirProven, openDirAt, renameAt, rmdirAt, withFd, type DirFs, type FileStat } from './safefs.js';
import { ownTempName } from '../reconcile/ownTemps.js';

export type Outcome =
  | { action: Action; ok: true; record?: CreatedRecord }
  | { action: Action; ok: false; code: string; detail: string; retry: boolean };

export interface ApplyResult {
  outcomes: Outcome[];
  linkOutcomes: LinkOutcome[];
  /** Leftovers of an earlier run's private dirs being made, removed. */
  leftovers?: string[];
  /** The rundir changed under the plan: read again and re-plan. */
  stale: boolean;
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code ?? 'EUNKNOWN';

function fail(action: Action, code: string, detail: string, retry = false): Outcome {
  return { action, ok: false, code, detail, retry };
}

/**
 * A private dir is made under a provable temporary name (reconcile/ownTemps.ts), proven new,
 * given its owner and mode, and only then renamed to its name, never replacing anything: a kill
 * at any instant leaves either nothing at the name or the user's own dir, never a root-owned one.
 */
function mkdirPrivate(rundirFd: number, a: Extract<Action, { op: 'mkdir' }>, selfUid: number, parent: DirFs, key: Buffer, uid: number): Outcome {
  const tmp = ownTempName(key, uid);
  let made: { fd: number; st: FileStat };
  try {
    made = mkdirProven(rundirFd, tmp, PRIVATE_DIR_MODE, selfUid, parent);
  } catch (e) {
    // Swapped right after the mkdir: a fresh read decides what it is; it is left untouched.
    const c = errCode(e);
    if (c === 'ESWAPPED' || c === 'ELOOP' || c === 'ENOTDIR' || c === 'ENOENT' || c === 'EEXIST') return fail(a, c, `replaced right after mkdir (${(e as Error).message}); left untouched`, true);
    return fail(a, c, (e as Error).message);
  }
  return withFd(made.fd, (fd) => {
    fchown(fd, a.owner, a.group);
    // chown clears no bits on a directory, and with any usual umask mkdir gave 0700 already.
    if ((made.st.mode & 0o7777) !== PRIVATE_DIR_MODE) fchmod(fd, PRIVATE_DIR_MODE);
    try {
      renameAt(rundirFd, tmp, rundirFd, a.name, true);
    } catch (e) {
      // Something appeared at the name since the read: ours goes (while it is still ours and
      // empty), and a fresh read decides what the other is.
      const st = lstatAt(rundirFd, tmp);
      if (st?.isDirectory() && st.ino === made.st.ino && st.dev === made.st.dev) {
        try {
          rmdirAt(rundirFd, tmp);
        } catch {
          // not empty any more: the next sync finds it by its name
        }
      }
      const c = errCode(e);
      return fail(a, c, c === 'EEXIST' ? 'appeared since it was read' : (e as Error).message, true);
    }
    return { action: a, ok: true as const, record: { ino: made.st.ino, dev: made.st.dev } };
  });
}

/**
 * Removes what a kill left under rundird's provable temporary names (empty directories only:
 * one a user filled since is left, and found again by the next sync). Returns the names removed.
 */
function dropLeftovers(rundirFd: number, names: readonly string[]): string[] {
  const gone: string[] = [];
  for (const n of names) {
    const st = lstatAt(rundirFd, n);
    if (!st?.isDirectory()) continue;
    try {
      rmdirAt(rundirFd, n);
      gone.push(n);
    } catch {
      // not empty, or gone meanwhile
    }
  }
  return gone;
}

function fixPrivate(rundirFd: number, a: Extract<Action, { op: 'fix' }>, selfUid: number): Outcome {
  let opened: { fd: number; st: FileStat };
  try {
    // The very directory the read found (a private dir may be a tmpfs of its own): anything
    // else there now, a mount made since included, is not entered.
    opened = openDirAt(rundirFd, a.name, { ino: a.ino, dev: a.dev });
  } catch (e) {
    if (errCode(e) === 'ESTALE') return fail(a, 'ESTALE', 'replaced since it was read', true);
    return fail(a, errCode(e), `changed since it was read (${errCode(e)}); left untouched`, true);
  }
  const { fd, st } = opened;
  return withFd(fd, () => {
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
 * Applies one UID's plan inside the runtime root (an open descriptor): private dirs made or
 * corrected first, then the links (they may go into a dir just made; the removals of links and
 * of directories made for them come last among them, deepest first), then the private dirs of
 * snaps that are gone. The rundir is opened without following symlinks and must still be the
 * directory the plan was made for; a mount's root inside it is entered only where `mounts`
 * names it (the read judged it local), as that very inode.
 */
export function applyPlan(rootFd: number, p: Plan, links: readonly LinkAction[], selfUid: number, key: Buffer, mounts: MountRoots = new Map(), leftovers: readonly string[] = []): ApplyResult {
  const isBook = (a: Action) => a.op === 'forget';
  const outcomes: Outcome[] = p.actions.filter(isBook).map((action) => ({ action, ok: true as const }));
  const linkOutcomes: LinkOutcome[] = [];
  const writes = p.actions.filter((a) => !isBook(a));
  const linkWrites = links.filter((a) => a.op !== 'forget' && a.op !== 'forget-dir');
  for (const a of links) if (a.op === 'forget' || a.op === 'forget-dir') linkOutcomes.push({ action: a, ok: true });
  if ((writes.length === 0 && linkWrites.length === 0 && leftovers.length === 0) || p.rundir === null) return { outcomes, linkOutcomes, stale: false };
  let rundirFd: number;
  let st: FileStat;
  try {
    // Entered only if it is still the directory the plan was made for (a mount made over it
    // since is another inode, and is never asked anything).
    ({ fd: rundirFd, st } = openDirAt(rootFd, String(p.uid), p.rundir));
  } catch {
    return { outcomes, linkOutcomes, stale: true };
  }
  try {
    if (st.uid !== p.uid) return { outcomes, linkOutcomes, stale: true };
    let stale = false;
    const parent: DirFs = writes.some((a) => a.op === 'mkdir') || linkWrites.some((a) => a.op === 'link' && a.mkdirs.length > 0) ? dirFs(rundirFd) : { dev: st.dev, tmpfs: false };
    const run = (a: Action) => {
      let o: Outcome;
      try {
        if (a.op === 'mkdir') o = mkdirPrivate(rundirFd, a, selfUid, parent, key, p.uid);
        else if (a.op === 'fix') o = fixPrivate(rundirFd, a, selfUid);
        else o = rmdirOwn(rundirFd, a as Extract<Action, { op: 'rmdir' }>);
      } catch (e) {
        o = fail(a, errCode(e), (e as Error).message);
      }
      if (!o.ok && o.retry) stale = true;
      outcomes.push(o);
    };
    for (const a of writes) if (a.op !== 'rmdir') run(a);
    for (const o of applyLinks(rundirFd, p.uid, selfUid, linkWrites, parent, mounts)) {
      if (!o.ok && o.retry) stale = true;
      linkOutcomes.push(o);
    }
    for (const a of writes) if (a.op === 'rmdir') run(a);
    return { outcomes, linkOutcomes, stale, leftovers: leftovers.length > 0 ? dropLeftovers(rundirFd, leftovers) : [] };
  } finally {
    close(rundirFd);
  }
}
