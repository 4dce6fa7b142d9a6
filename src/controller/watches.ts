// The inotify watches inside each live rundir: the rundir itself and every directory whose
// entries decide links (private dirs, `pulse/`, their ancestors). A watch is armed only on a
// directory opened component by component with O_NOFOLLOW from the trusted runtime root (never
// a mount's root but the rundir's own), through its descriptor (`/proc/self/fd/N` names the
// very inode that was checked: inotify takes a path, and this one is walked by no lookup;
// without /proc the watch cannot be armed, and the UID is read on a timer instead), and it is
// armed again whenever the directory at that path is another one (replaced, re-mounted). A
// directory that does not exist yet is simply not watched: its parent's watch says when it
// appears, and the next sync arms it. Every event only marks the UID dirty.
import type { Subscription } from 'rxjs';
import { watchDir } from '../sources/watchDir.js';
import { RundirWalker } from '../world/read.js';
import type { NodeStat } from '../world/types.js';

/** The magic link that names an open descriptor's very inode (for inotify, which takes a path). */
const fdPath = (fd: number): string => `/proc/self/fd/${fd}`;

interface Armed {
  ino: number;
  dev: number;
  /** A directory removed and made again can get the same inode number; not the same birth time. */
  btime: number;
  sub: Subscription;
}

export class Watches {
  private readonly byUid = new Map<number, Map<string, Armed>>();

  constructor(
    private readonly onEvent: (uid: number) => void,
    private readonly onError: (uid: number, dir: string, e: Error) => void,
    /** A directory that is there could not be watched (no inotify watches left, say): the UID is read again later. */
    private readonly onArmFailed: (uid: number, dir: string, e: Error) => void,
  ) {}

  /** How many directories are watched (for status and the benchmark). */
  get size(): number {
    let n = 0;
    for (const m of this.byUid.values()) n += m.size;
    return n;
  }

  has(uid: number): boolean {
    return this.byUid.has(uid);
  }

  /**
   * Makes the UID's watches exactly `dirs` (rundir-relative, '' = the rundir). `seen` is what
   * the sync read at each path: a watch on another inode than the one there now is armed anew.
   */
  set(uid: number, rootFd: number, dirs: ReadonlySet<string>, seen: (dir: string) => NodeStat | null | undefined): void {
    let have = this.byUid.get(uid);
    if (!have) this.byUid.set(uid, (have = new Map()));
    for (const [d, w] of have) {
      const now = seen(d);
      const other = now === null || (now !== undefined && (now.ino !== w.ino || now.dev !== w.dev || (now.btime !== undefined && now.btime !== w.btime)));
      if (!dirs.has(d) || other) {
        w.sub.unsubscribe();
        have.delete(d);
      }
    }
    // Never a mount point below the rundir, nor anything beyond one: opening it would ask its
    // filesystem, and a FUSE server need never answer.
    const pastMount = (d: string) => {
      const parts = d === '' ? [] : d.split('/');
      for (let i = 1; i <= parts.length; i++) if (seen(parts.slice(0, i).join('/'))?.kind === 'mount') return true;
      return false;
    };
    const todo = [...dirs].filter((d) => !have.has(d) && !pastMount(d));
    const rundir = seen('');
    if (todo.length > 0 && rundir && rundir.kind === 'dir') {
      // One walk from the rundir for all of them: each directory opened once, as a path only.
      const walker = new RundirWalker(rootFd, uid, rundir, (rel) => {
        const st = seen(rel);
        return st?.mountRoot ? st : undefined;
      });
      try {
        for (const d of todo) {
          const a = this.arm(uid, d, walker);
          if (a) have.set(d, a);
        }
      } finally {
        walker.close();
      }
    }
    if (have.size === 0) this.byUid.delete(uid);
  }

  drop(uid: number): void {
    for (const w of this.byUid.get(uid)?.values() ?? []) w.sub.unsubscribe();
    this.byUid.delete(uid);
  }

  dropAll(): void {
    for (const uid of [...this.byUid.keys()]) this.drop(uid);
  }

  private arm(uid: number, dir: string, walker: RundirWalker): Armed | null {
    // Not there (yet), or not a directory to enter: the parent's watch says when it is.
    const held = walker.at(dir);
    if (held === null) return null;
    const { fd, st } = held;
    let armError: Error | null = null;
    // The kernel resolves the descriptor's magic link to the very inode that was checked (an
    // O_PATH descriptor: nothing was opened on its filesystem).
    let failed = false;
    let sub: Subscription | undefined = undefined;
    sub = watchDir(fdPath(fd)).subscribe((e) => {
      if (e.type === 'error') {
        // The directory went (or cannot be watched): the next sync arms it again if it is back.
        failed = true;
        const have = this.byUid.get(uid);
        if (sub && have?.get(dir)?.sub === sub) have.delete(dir);
        if (!sub) {
          armError = e.error;
          return; // could not be armed: said below, once
        }
        sub.unsubscribe();
        this.onError(uid, dir, e.error);
      }
      this.onEvent(uid);
    });
    if (failed) {
      sub.unsubscribe();
      // The directory is there and could not be watched: nothing would say when it changes.
      if (armError) this.onArmFailed(uid, dir, armError);
      return null;
    }
    return { ino: st.ino, dev: st.dev, btime: st.birthtimeMs, sub };
  }
}
