// Makes and removes links inside one rundir, only through descriptors opened with O_NOFOLLOW
// from the rundir's descriptor: a symlink planted anywhere on either path stops the action,
// and every directory walked through must belong to the rundir's UID (or be one rundird has
// just made). A new link goes to an unguessable temporary name, is checked (same inode as the
// checked source, owned by the UID), and only then renamed over the target: a swap in between
// is caught. Nothing is ever removed that rundird did not make: the temporary name only while
// it is still the inode just linked, a target only while it is still the recorded inode.
import { posix } from 'node:path';
import { symlinkValue, type DirRecord, type LinkAction, type LinkRecord } from '../reconcile/links.js';
import { parentOf, TEMP_PREFIX } from '../world/links.js';
import { close, dirFs, fchmod, fchown, fstat, linkAt, lstatAt, mkdirProven, openDirAt, renameAt, rmdirAt, symlinkAt, tempName, unlinkAt, type DirFs, type Expect } from './safefs.js';

export interface LinkOutcome {
  action: LinkAction;
  ok: boolean;
  /** Made as a symlink because a hard link crossed filesystems (rule's exdev: symlink). */
  fellBack?: boolean;
  record?: LinkRecord;
  /** Directories made on the way to the target, with their identity. */
  made?: [string, DirRecord][];
  code?: string;
  detail?: string;
  /** The directory changed under the plan: read again. */
  retry?: boolean;
}

export interface Make {
  dirs: Set<string>;
  owner: number;
  group: number;
  instance: string;
  selfUid: number;
  made: [string, DirRecord][];
  /** The rundir's filesystem: directories made below it are on it too (else EXDEV elsewhere refuses them). */
  fs: DirFs;
}

/** Rundir-relative directories that are mounts' roots the read judged local (tmpfs): entered only as these very inodes. */
export type MountRoots = ReadonlyMap<string, Expect>;
const NO_MOUNTS: MountRoots = new Map();

const refused = (what: string, detail: string) => Object.assign(new Error(`${what}: ${detail}`), { code: 'EPERM' });

/**
 * Opens a rundir-relative directory one component at a time, each with O_NOFOLLOW, each owned
 * by `uid`, none a mount's root but those the read judged local (a filesystem a user mounted
 * there is never entered).
 */
export function openRel(rundirFd: number, rel: string, uid: number, make?: Make, mounts: MountRoots = NO_MOUNTS): number {
  let fd = rundirFd;
  const parts = rel === '' ? [] : rel.split('/');
  try {
    for (let i = 0; i < parts.length; i++) {
      const here = parts.slice(0, i + 1).join('/');
      let next: number;
      try {
        let st;
        ({ fd: next, st } = openDirAt(fd, parts[i]!, mounts.get(here)));
        if (st.uid !== uid) {
          close(next);
          throw refused(here, `belongs to UID ${st.uid}, not ${uid}`);
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !make?.dirs.has(here)) throw e;
        // Below a mount on a private dir the parent is on another filesystem than the rundir.
        const parentFs = fd === rundirFd || fstat(fd).dev === make.fs.dev ? make.fs : dirFs(fd);
        const m = mkdirProven(fd, parts[i]!, 0o700, make.selfUid, parentFs);
        next = m.fd;
        fchown(next, make.owner, make.group);
        fchmod(next, 0o700);
        make.made.push([here, { ino: m.st.ino, dev: m.st.dev, instance: make.instance }]);
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

/** Removes a temporary entry only while it is the inode rundird just made there. */
function dropTemp(dirfd: number, name: string, ino: number): void {
  const st = lstatAt(dirfd, name);
  if (st && st.ino === ino) unlinkAt(dirfd, name);
}

function doLink(rundirFd: number, uid: number, selfUid: number, a: Extract<LinkAction, { op: 'link' }>, rundirFs: DirFs, mounts: MountRoots): LinkOutcome {
  let srcFd: number | null = null;
  let dstFd: number | null = null;
  const make: Make = { dirs: new Set(a.mkdirs), owner: a.owner, group: a.group, instance: a.instance, selfUid, made: [], fs: rundirFs };
  try {
    srcFd = openRel(rundirFd, parentOf(a.source), uid, undefined, mounts);
    // The private dir is the user's; a directory rundird makes below it is the user's too.
    dstFd = openRel(rundirFd, parentOf(a.target), a.owner, make, mounts);
    const srcName = posix.basename(a.source);
    const st = lstatAt(srcFd, srcName);
    if (!st || st.ino !== a.sourceIno || st.uid !== uid || !(st.isSocket() || st.isFile())) {
      return { action: a, ok: false, made: make.made, code: 'ECHANGED', detail: `${a.source} changed before it could be linked`, retry: true };
    }
    let kind = a.kind;
    let fellBack = false;
    let tmp = '';
    // An unguessable name; one that exists all the same is someone else's: another name, never a removal.
    for (let tries = 0; ; tries++) {
      tmp = tempName(TEMP_PREFIX);
      try {
        if (kind === 'hard') {
          try {
            linkAt(srcFd, srcName, dstFd, tmp);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'EXDEV' || a.exdev !== 'symlink') throw e;
            kind = 'symlink';
            fellBack = true;
          }
        }
        if (kind === 'symlink') symlinkAt(symlinkValue(a.source, a.target), dstFd, tmp);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || tries >= 3) throw e;
      }
    }
    const made = lstatAt(dstFd, tmp);
    const good = made && (kind === 'hard' ? made.ino === a.sourceIno && made.uid === uid && (made.isSocket() || made.isFile()) : made.isSymbolicLink());
    if (!good) {
      if (made && kind === 'hard' && made.ino === a.sourceIno) dropTemp(dstFd, tmp, made.ino);
      return { action: a, ok: false, made: make.made, code: 'ECHANGED', detail: `${a.source} was swapped while being linked; link undone`, retry: true };
    }
    if (a.replace && kind === 'hard') {
      // Replace only what is still our old link (the planner saw its inode); already right: done.
      const now = lstatAt(dstFd, posix.basename(a.target));
      if (now && now.ino === a.sourceIno) {
        dropTemp(dstFd, tmp, made.ino);
        return { action: a, ok: true, made: make.made, record: { ino: now.ino, kind, source: a.source, rule: a.rule, instance: a.instance } };
      }
    }
    renameAt(dstFd, tmp, dstFd, posix.basename(a.target));
    return { action: a, ok: true, fellBack, made: make.made, record: { ino: made.ino, kind, source: a.source, rule: a.rule, instance: a.instance } };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Gone meanwhile: read again. A symlink or non-directory on the way (ELOOP, ENOTDIR): refused.
    return { ...fail(a, e, code === 'ENOENT' || code === 'ESWAPPED'), made: make.made };
  } finally {
    if (srcFd !== null && srcFd !== rundirFd) close(srcFd);
    if (dstFd !== null && dstFd !== rundirFd) close(dstFd);
  }
}

/** Opens the parent of a rundir-relative path, owned by the UID, without making anything. */
function withParent(rundirFd: number, rel: string, uid: number, a: LinkAction, mounts: MountRoots, fn: (fd: number, name: string) => LinkOutcome): LinkOutcome {
  let fd: number | null = null;
  try {
    fd = openRel(rundirFd, parentOf(rel), uid, undefined, mounts);
    return fn(fd, posix.basename(rel));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { action: a, ok: true };
    return fail(a, e);
  } finally {
    if (fd !== null && fd !== rundirFd) close(fd);
  }
}

function doUnlink(rundirFd: number, uid: number, a: Extract<LinkAction, { op: 'unlink' }>, mounts: MountRoots): LinkOutcome {
  return withParent(rundirFd, a.target, uid, a, mounts, (fd, name) => {
    const st = lstatAt(fd, name);
    if (!st) return { action: a, ok: true };
    // Only while it is still the link rundird made.
    if (st.ino !== a.ino) return { action: a, ok: false, code: 'ENOTOURS', detail: `${a.target} is no longer the link rundird made; left alone` };
    unlinkAt(fd, name);
    return { action: a, ok: true };
  });
}

function doRmdir(rundirFd: number, uid: number, a: Extract<LinkAction, { op: 'rmdir' }>, mounts: MountRoots): LinkOutcome {
  return withParent(rundirFd, a.dir, uid, a, mounts, (fd, name) => {
    const st = lstatAt(fd, name);
    if (!st) return { action: a, ok: true };
    if (!st.isDirectory() || st.ino !== a.ino || st.dev !== a.dev) return { action: a, ok: false, code: 'ENOTOURS', detail: `${a.dir} is no longer the directory rundird made; left alone` };
    try {
      rmdirAt(fd, name);
    } catch (e) {
      const c = (e as NodeJS.ErrnoException).code;
      if (c === 'ENOTEMPTY' || c === 'EEXIST') return { action: a, ok: false, code: 'ENOTEMPTY', detail: `${a.dir} is not empty; left in place` };
      throw e;
    }
    return { action: a, ok: true };
  });
}

/** Applies link actions in one rundir (an open descriptor, O_NOFOLLOW from the trusted root). */
export function applyLinks(rundirFd: number, uid: number, selfUid: number, actions: readonly LinkAction[], rundirFs: DirFs, mounts: MountRoots = NO_MOUNTS): LinkOutcome[] {
  const out: LinkOutcome[] = [];
  for (const a of actions) {
    if (a.op === 'forget' || a.op === 'forget-dir') out.push({ action: a, ok: true });
    else if (a.op === 'link') out.push(doLink(rundirFd, uid, selfUid, a, rundirFs, mounts));
    else if (a.op === 'unlink') out.push(doUnlink(rundirFd, uid, a, mounts));
    else out.push(doRmdir(rundirFd, uid, a, mounts));
  }
  return out;
}
