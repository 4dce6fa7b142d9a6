// Kiosk rescue's writes (the plan: reconcile/rescue.ts). The rescue directory is root's own
// (`/run/user/.rundird-rescue/UID`, 0700); everything in a rundir goes through descriptors opened
// with O_NOFOLLOW, every directory walked must be the UID's, and nothing is put where anything
// already is: link(2) and symlink(2) fail on an existing name, and no rename ever lands in a
// rundir. A rescue link is made at an unguessable name and checked before it is renamed into
// place, so what is kept is the very socket that was checked.
import * as fs from 'node:fs';
import { posix } from 'node:path';
import { KEEP_TEMP, rescueName, type Proof, type RescueAction } from '../reconcile/rescue.js';
import { openRel, type Make } from './links.js';
import { close, dirFs, fchmod, fchown, fstat, linkAt, lstatAt, mkdirAt, mkdirProven, openDirAt, renameAt, reopenDir, rmdirAt, symlinkAt, tempName, unlinkAt, type Expect } from './safefs.js';

export interface RescueIO {
  rootFd: number;
  /** The UID's rescue directory, and its path (what a symlink in a covering tmpfs points into). */
  rescueFd: number;
  rescuePath: string;
  /** The plain rundir held open (the one a mount may now hide). */
  plainFd: number | null;
  /** The rundir as the read found it (a tmpfs's root is entered only when it is this one). */
  rundir: Expect | null;
  uid: number;
  gid: number;
  selfUid: number;
}

export interface RescueOutcome {
  action: RescueAction;
  ok: boolean;
  code?: string;
  detail?: string;
  /** What was made (a symlink shown, the rundir made again). */
  proof?: Proof;
  /** Directories made on the way. */
  made?: [string, Proof][];
}

const parentOf = (rel: string) => (rel.includes('/') ? posix.dirname(rel) : '');

/** Makes `/…/rescue` and `/…/rescue/UID`: root's, 0700, never through a symlink. Returns the UID dir's descriptor. */
export function openRescueDir(root: string, uid: number): number {
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const rfd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
  try {
    const st = fstat(rfd);
    if (st.uid !== process.geteuid!() || (st.mode & 0o077) !== 0) throw Object.assign(new Error(`${root} is not rundird's own (uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)})`), { code: 'EPERM' });
    try {
      mkdirAt(rfd, String(uid), 0o700);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const { fd, st: u } = openDirAt(rfd, String(uid));
    if (u.uid !== process.geteuid!() || (u.mode & 0o077) !== 0) {
      close(fd);
      throw Object.assign(new Error(`${root}/${uid} is not rundird's own`), { code: 'EPERM' });
    }
    return fd;
  } finally {
    close(rfd);
  }
}

/** Removes temporary names a crash left in the middle of keeping (root's own directory, rundird's own names). */
export function dropStaleTemps(rescueFd: number, names: readonly string[]): void {
  for (const name of names) if (name.startsWith(KEEP_TEMP)) unlinkAt(rescueFd, name);
}

function openRundir(io: RescueIO): number {
  const { fd, st } = openDirAt(io.rootFd, String(io.uid), io.rundir ?? undefined);
  if (st.uid !== io.uid) {
    close(fd);
    throw Object.assign(new Error(`the rundir does not belong to UID ${io.uid}`), { code: 'EPERM' });
  }
  return fd;
}

/** A descriptor of the directory a rundir-relative path is in (a new one: the caller closes it). */
function openParent(rundirFd: number, rel: string, uid: number, make?: Make): number {
  const dir = parentOf(rel);
  return dir === '' ? reopenDir(rundirFd) : openRel(rundirFd, dir, uid, make);
}

function withDir<T>(fd: number, fn: (fd: number) => T): T {
  try {
    return fn(fd);
  } finally {
    close(fd);
  }
}

function one(io: RescueIO, a: RescueAction): RescueOutcome {
  switch (a.op) {
    case 'keep': {
      if (io.plainFd === null) return { action: a, ok: false, code: 'ENOENT', detail: 'the plain rundir is not held' };
      return withDir(openParent(io.plainFd, a.rel, io.uid), (src) => {
        const base = posix.basename(a.rel);
        const st = lstatAt(src, base);
        if (!st?.isSocket() || st.ino !== a.ino || st.uid !== io.uid) return { action: a, ok: false, code: 'ECHANGED', detail: `${a.rel} changed before it could be kept` };
        const tmp = tempName(KEEP_TEMP);
        linkAt(src, base, io.rescueFd, tmp);
        const t = lstatAt(io.rescueFd, tmp);
        if (!t || t.ino !== a.ino) {
          if (t) unlinkAt(io.rescueFd, tmp); // root's own directory: only rundird writes there
          return { action: a, ok: false, code: 'ECHANGED', detail: `${a.rel} was swapped while it was kept` };
        }
        renameAt(io.rescueFd, tmp, io.rescueFd, rescueName(a.rel));
        return { action: a, ok: true };
      });
    }
    case 'drop': {
      const name = rescueName(a.rel);
      const st = lstatAt(io.rescueFd, name);
      if (st && st.ino === a.ino) unlinkAt(io.rescueFd, name);
      return { action: a, ok: true };
    }
    case 'show':
    case 'restore': {
      const made: [string, Proof][] = [];
      const rundirFd = openRundir(io);
      try {
        const parentFs = dirFs(rundirFd);
        const make: Make = { dirs: new Set(a.mkdirs), owner: io.uid, group: io.gid, instance: '', selfUid: io.selfUid, made: [], fs: parentFs };
        return withDir(openParent(rundirFd, a.rel, io.uid, make), (dir) => {
          for (const [d, r] of make.made) made.push([d, { ino: r.ino, dev: r.dev }]);
          const base = posix.basename(a.rel);
          // Fails with EEXIST on anything already there: nothing is ever replaced.
          if (a.op === 'show') symlinkAt(`${io.rescuePath}/${rescueName(a.rel)}`, dir, base);
          else linkAt(io.rescueFd, rescueName(a.rel), dir, base);
          const st = lstatAt(dir, base)!;
          return { action: a, ok: true, proof: { ino: st.ino, dev: st.dev }, made };
        });
      } finally {
        close(rundirFd);
      }
    }
    case 'unshow':
    case 'unshow-dir': {
      const rel = a.op === 'unshow' ? a.rel : a.dir;
      return withDir(openRundir(io), (rundirFd) =>
        withDir(openParent(rundirFd, rel, io.uid), (dir) => {
          const base = posix.basename(rel);
          const st = lstatAt(dir, base);
          if (!st || st.ino !== a.ino) return { action: a, ok: true }; // not ours any more: forgotten
          if (a.op === 'unshow') {
            if (st.isSymbolicLink()) unlinkAt(dir, base);
          } else if (st.isDirectory()) rmdirAt(dir, base);
          return { action: a, ok: true };
        }),
      );
    }
    case 'remake': {
      const m = mkdirProven(io.rootFd, String(io.uid), 0o700, io.selfUid, dirFs(io.rootFd));
      try {
        fchown(m.fd, io.uid, io.gid);
        fchmod(m.fd, 0o700);
      } finally {
        close(m.fd);
      }
      return { action: a, ok: true, proof: { ino: m.st.ino, dev: m.st.dev } };
    }
    case 'forget-shown':
      return { action: a, ok: true };
  }
}

/** Carries out the rescue plan in order; one failure does not stop the rest (a failed remake does). */
export function applyRescue(io: RescueIO, actions: readonly RescueAction[]): RescueOutcome[] {
  const out: RescueOutcome[] = [];
  for (const a of actions) {
    try {
      out.push(one(io, a));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      out.push({ action: a, ok: false, code: err.code ?? 'ERROR', detail: err.message });
      if (a.op === 'remake') break;
    }
  }
  return out;
}
