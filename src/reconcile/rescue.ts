// Kiosk rescue, `restore` policy (docs/kiosk.md), pure: from the sockets that services outside
// any session listen on in a plain rundir, what rundird keeps of them and where it puts them
// back. A rescue link is a hard link of the socket in a root-only directory on the same
// filesystem: the socket's inode outlives logind's purge there. While a tmpfs covers the plain
// rundir (a root login), a symlink at the socket's path in the tmpfs points at the rescue link;
// after the purge the rundir is made again and the rescue link is linked back at its path.
// Nothing is kept that is not a live socket of a reliant service, owned by the rundir's UID;
// nothing is put where anything already is.
import type { LifecycleState } from '../world/logind.js';
import type { NodeStat, RundirStatus } from '../world/types.js';

export interface Proof {
  ino: number;
  dev: number;
}

export interface RescueSnapshot {
  uid: number;
  /** The restore policy is on for this UID. */
  restore: boolean;
  /** Symlinks in a covering tmpfs reach the rescue directory (only root's: it is root-only). */
  canShow: boolean;
  status: RundirStatus;
  lifecycle: LifecycleState;
  /** The rundir now (its inode), when it is a directory. */
  rundir: Proof | null;
  /** A plain rundir held open: the rundir itself, or the one a mount now hides. */
  plain: { proof: Proof; hidden: boolean } | null;
  /** Rundir-relative paths bound by a listening socket now (the kernel's table: a purged name stays listed while its server lives). */
  listening: ReadonlySet<string>;
  /** Whether a process scan has said who serves what (until then nothing is dropped: after a restart the links are still good). */
  serversKnown: boolean;
  /** Rundir-relative paths of sockets a service outside any session holds (the last process scan). */
  reliant: ReadonlySet<string>;
  /** lstat, in the held plain dir, of each reliant path. */
  inPlain: ReadonlyMap<string, NodeStat | null>;
  /** The rescue directory's links: rundir-relative path → the kept inode. */
  kept: ReadonlyMap<string, NodeStat>;
  /** lstat in the rundir as it is now (the covering tmpfs, or a re-made dir) of kept paths and their parents, and of what was shown. */
  here: ReadonlyMap<string, NodeStat | null>;
}

export interface RescueRecord {
  /** Symlinks rundird put in a covering tmpfs, and the directories it made for them. */
  shown: Map<string, Proof>;
  shownDirs: Map<string, Proof>;
  /** The rundir rundird made again after a purge. */
  remade: Proof | null;
  /** Failures already said (`op:path:code`): each once, again after it worked. */
  failed: Set<string>;
}

export const emptyRescue = (): RescueRecord => ({ shown: new Map(), shownDirs: new Map(), remade: null, failed: new Set() });

export type RescueAction =
  | { op: 'keep'; rel: string; ino: number; replace: boolean }
  | { op: 'drop'; rel: string; ino: number; why: string }
  | { op: 'show'; rel: string; mkdirs: string[] }
  | { op: 'unshow'; rel: string; ino: number }
  | { op: 'unshow-dir'; dir: string; ino: number }
  | { op: 'forget-shown'; rel: string }
  | { op: 'remake' }
  | { op: 'restore'; rel: string; mkdirs: string[] };

const parents = (rel: string): string[] => {
  const parts = rel.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
};

/** A rundir-relative socket path rundird may keep: plain components, no dot-names of its own. */
export function rescuable(rel: string): boolean {
  if (rel === '' || rel.length > 255 || rel.startsWith('/')) return false;
  return rel.split('/').every((c) => c !== '' && c !== '.' && c !== '..') && rel.split('/').length <= 4;
}

export function planRescue(s: RescueSnapshot, r: RescueRecord): RescueAction[] {
  const out: RescueAction[] = [];
  const covering = (s.status === 'tmpfs' || s.status === 'mounted') && s.plain?.hidden === true;
  // Kept and still served: a listening server (the bound name stays listed after a purge).
  const alive = new Set<string>();
  for (const [rel, st] of s.kept) {
    if (!s.restore) out.push({ op: 'drop', rel, ino: st.ino, why: 'the restore policy is off' });
    else if (!s.listening.has(rel)) {
      if (s.serversKnown) out.push({ op: 'drop', rel, ino: st.ino, why: 'its server is gone' });
    } else alive.add(rel);
  }
  // Keep each live socket of a reliant service in the plain dir (again, if its server made it anew).
  if (s.restore && s.plain) {
    for (const rel of s.reliant) {
      const st = s.inPlain.get(rel);
      if (!s.listening.has(rel)) continue;
      if (!rescuable(rel) || st?.kind !== 'socket' || st.uid !== s.uid) continue;
      const k = s.kept.get(rel);
      if (k && k.ino === st.ino && k.dev === st.dev) continue;
      out.push({ op: 'keep', rel, ino: st.ino, replace: k !== undefined });
      alive.add(rel);
    }
  }
  // Shown in a covering tmpfs: only while the session lives; taken away when it closes.
  const showNow = s.restore && s.canShow && covering && (s.lifecycle === 'live' || s.lifecycle === 'starting');
  const wanted = new Set<string>();
  if (showNow) {
    for (const rel of alive) {
      wanted.add(rel);
      if (r.shown.has(rel) || s.here.get(rel) !== null) continue; // there already, or someone's: never replaced
      const mkdirs = parents(rel).filter((d) => s.here.get(d) === null);
      if (parents(rel).some((d) => { const st = s.here.get(d); return st !== null && (st?.kind !== 'dir' || st.uid !== s.uid); })) continue;
      out.push({ op: 'show', rel, mkdirs });
    }
  }
  for (const [rel, p] of r.shown) {
    if (wanted.has(rel)) continue;
    const st = s.here.get(rel);
    if (st && st.kind === 'symlink' && st.ino === p.ino && st.dev === p.dev) out.push({ op: 'unshow', rel, ino: p.ino });
    else out.push({ op: 'forget-shown', rel });
  }
  if (!showNow) {
    // Deepest first; a directory the user put something in stays (rmdir fails, and it is forgotten).
    for (const [dir, p] of [...r.shownDirs].sort((a, b) => b[0].length - a[0].length)) out.push({ op: 'unshow-dir', dir, ino: p.ino });
  }
  // After the purge: the rundir again, and each kept socket back at its path, in one go. Only
  // then: a socket removed from a rundir that is there (its server's own cleanup, a purge
  // half done) is not put back under anyone's feet.
  if (s.restore && alive.size > 0) {
    if (s.status === 'absent' && s.lifecycle === 'absent') {
      out.push({ op: 'remake' });
      for (const rel of alive) out.push({ op: 'restore', rel, mkdirs: parents(rel) });
    }
  }
  return out;
}

/** The paths the snapshot must lstat in the rundir as it is now. */
export function rescuePathsHere(kept: Iterable<string>, r: RescueRecord): string[] {
  const out = new Set<string>();
  for (const rel of kept) {
    out.add(rel);
    for (const d of parents(rel)) out.add(d);
  }
  for (const rel of r.shown.keys()) out.add(rel);
  for (const d of r.shownDirs.keys()) out.add(d);
  return [...out];
}

/** Rescue link names: the rundir-relative path with every '/' and '%' escaped, so one directory holds them. */
export const rescueName = (rel: string): string => rel.replaceAll('%', '%25').replaceAll('/', '%2F');
/** Temporary names of rescue links being made (never a rescue link; one left by a crash is removed). */
export const KEEP_TEMP = '.keep-';

export function relOfRescueName(name: string): string | null {
  if (name.startsWith(KEEP_TEMP)) return null;
  if (!/^[^%]*(%(25|2F)[^%]*)*$/.test(name)) return null;
  const rel = name.replaceAll('%2F', '/').replaceAll('%25', '%');
  return rescuable(rel) && rescueName(rel) === name ? rel : null;
}
