// Makes and removes links inside one rundir, only through descriptors opened with O_NOFOLLOW
// from the trusted runtime root: a symlink planted anywhere on either path stops the action.
// A new link goes to a temporary name, is checked (same inode as the checked source, owned by
// the rundir's UID), and only then renamed over the target: a swap in between is caught.
import * as fs from 'node:fs';
import { posix } from 'node:path';
import { symlinkValue, type LinkAction, type LinkRecord } from '../reconcile/links.js';
import { parentOf } from '../world/links.js';
import { at, close, fchmod, fchown, lstatAt, mkdirAt, openDirAt } from './safefs.js';

export interface LinkOutcome {
  action: LinkAction;
  ok: boolean;
  /** Made as a symlink because a hard link crossed filesystems (rule's exdev: symlink). */
  fellBack?: boolean;
  record?: LinkRecord;
  code?: string;
  detail?: string;
  /** The directory changed under the plan: read again. */
  retry?: boolean;
}

let seq = 0;

/** Opens a rundir-relative directory one component at a time, each with O_NOFOLLOW. */
function openRel(rundirFd: number, rel: string, make?: { dirs: Set<string>; owner: number; group: number }): number {
  let fd = rundirFd;
  const parts = rel === '' ? [] : rel.split('/');
  try {
    for (let i = 0; i < parts.length; i++) {
      const here = parts.slice(0, i + 1).join('/');
      let next: number;
      try {
        next = openDirAt(fd, parts[i]!);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !make?.dirs.has(here)) throw e;
        mkdirAt(fd, parts[i]!, 0o700);
        next = openDirAt(fd, parts[i]!);
        fchown(next, make.owner, make.group);
        fchmod(next, 0o700);
      }
      if (fd !== rundirFd) close(fd);
      fd = next;
    }
    return fd;
  } catch (e) {
    if (fd !== rundirFd) close(fd);
    throw e;
  }
}

function fail(action: LinkAction, e: unknown, retry = false): LinkOutcome {
  const err = e as NodeJS.ErrnoException;
  return { action, ok: false, code: err.code ?? 'ERROR', detail: err.message, retry };
}

function doLink(rundirFd: number, uid: number, a: Extract<LinkAction, { op: 'link' }>): LinkOutcome {
  let srcFd: number | null = null;
  let dstFd: number | null = null;
  const tmp = `.rundird-${process.pid}-${++seq}`;
  try {
    srcFd = openRel(rundirFd, parentOf(a.source));
    dstFd = openRel(rundirFd, parentOf(a.target), { dirs: new Set(a.mkdirs), owner: a.owner, group: a.group });
    const srcName = posix.basename(a.source);
    const st = lstatAt(srcFd, srcName);
    if (!st || st.ino !== a.sourceIno || st.uid !== uid || !(st.isSocket() || st.isFile())) {
      return { action: a, ok: false, code: 'ECHANGED', detail: `${a.source} changed before it could be linked`, retry: true };
    }
    let kind = a.kind;
    let fellBack = false;
    if (kind === 'hard') {
      try {
        fs.linkSync(at(srcFd, srcName), at(dstFd, tmp));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EXDEV' || a.exdev !== 'symlink') throw e;
        kind = 'symlink';
        fellBack = true;
      }
    }
    if (kind === 'symlink') fs.symlinkSync(symlinkValue(a.source, a.target), at(dstFd, tmp));
    const made = lstatAt(dstFd, tmp);
    const good = made && (kind === 'hard' ? made.ino === a.sourceIno && made.uid === uid && (made.isSocket() || made.isFile()) : made.isSymbolicLink());
    if (!good) {
      fs.unlinkSync(at(dstFd, tmp));
      return { action: a, ok: false, code: 'ECHANGED', detail: `${a.source} was swapped while being linked; link undone`, retry: true };
    }
    if (a.replace) {
      // Replace only what is still our old link (the planner saw its inode).
      const now = lstatAt(dstFd, posix.basename(a.target));
      if (now && now.ino === a.sourceIno) {
        fs.unlinkSync(at(dstFd, tmp));
        return { action: a, ok: true, record: { ino: now.ino, kind, source: a.source, rule: a.rule, instance: a.instance } };
      }
    }
    fs.renameSync(at(dstFd, tmp), at(dstFd, posix.basename(a.target)));
    return { action: a, ok: true, fellBack, record: { ino: made.ino, kind, source: a.source, rule: a.rule, instance: a.instance } };
  } catch (e) {
    if (dstFd !== null) {
      try {
        fs.unlinkSync(at(dstFd, tmp));
      } catch {
        // never made
      }
    }
    const code = (e as NodeJS.ErrnoException).code;
    // Gone meanwhile: read again. A symlink or non-directory on the way (ELOOP, ENOTDIR): refused.
    return fail(a, e, code === 'ENOENT');
  } finally {
    if (srcFd !== null && srcFd !== rundirFd) close(srcFd);
    if (dstFd !== null && dstFd !== rundirFd) close(dstFd);
  }
}

function doUnlink(rundirFd: number, a: Extract<LinkAction, { op: 'unlink' }>): LinkOutcome {
  let fd: number | null = null;
  try {
    fd = openRel(rundirFd, parentOf(a.target));
    const name = posix.basename(a.target);
    const st = lstatAt(fd, name);
    if (!st) return { action: a, ok: true };
    // Only while it is still the link rundird made.
    if (st.ino !== a.ino) return { action: a, ok: false, code: 'ENOTOURS', detail: `${a.target} is no longer the link rundird made; left alone` };
    fs.unlinkSync(at(fd, name));
    return { action: a, ok: true };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { action: a, ok: true };
    return fail(a, e);
  } finally {
    if (fd !== null && fd !== rundirFd) close(fd);
  }
}

/** Applies link actions in one rundir (opened from the root fd, O_NOFOLLOW). */
export function applyLinks(rootFd: number, uid: number, actions: LinkAction[]): LinkOutcome[] {
  const out: LinkOutcome[] = [];
  let rundirFd: number;
  try {
    rundirFd = openDirAt(rootFd, String(uid));
  } catch (e) {
    return actions.map((a) => fail(a, e, true));
  }
  try {
    for (const a of actions) {
      if (a.op === 'forget') out.push({ action: a, ok: true });
      else if (a.op === 'adopt') out.push({ action: a, ok: true, record: a.record });
      else if (a.op === 'link') out.push(doLink(rundirFd, uid, a));
      else out.push(doUnlink(rundirFd, a));
    }
  } finally {
    close(rundirFd);
  }
  return out;
}
