// One directory's direct entries as an rxjs stream, through chokidar (inotify). Used for the
// runtime root, each live rundir and the snap root; a caller re-arms by unsubscribing and
// subscribing again (a watch set before a mount sees nothing inside it).
import { Observable } from 'rxjs';
import { watch } from 'chokidar';
import { join, relative, sep } from 'node:path';

export type DirEvent =
  | { type: 'add' | 'addDir' | 'unlink' | 'unlinkDir' | 'change'; name: string }
  /** Any inotify event, attribute changes included (chokidar's own events skip those). */
  | { type: 'raw'; name: string }
  | { type: 'ready' }
  | { type: 'error'; error: Error };

export interface WatchDirOptions {
  /** 0: the directory's own entries; 1: also the entries of its subdirectories. */
  depth: number;
  /**
   * Only the raw inotify events of the directory itself: chokidar then keeps no per-entry
   * state (no stat, no watch of its own on every file), which is most of its cost.
   */
  rawOnly?: boolean;
}

export function watchDir(dir: string, opts: WatchDirOptions = { depth: 0, rawOnly: true }): Observable<DirEvent> {
  return new Observable<DirEvent>((sub) => {
    const w = watch(dir, {
      depth: opts.depth,
      ignoreInitial: true,
      followSymlinks: false,
      // atomic would hold back unlink events for 100 ms; we want every hint at once.
      atomic: false,
      persistent: true,
      ...(opts.rawOnly ? { ignored: (p: string) => p !== dir } : {}),
    });
    w.on('all', (type, path) => {
      const name = relative(dir, path);
      if (name === '' || name.startsWith('..')) return;
      if (type === 'add' || type === 'addDir' || type === 'unlink' || type === 'unlinkDir' || type === 'change') {
        sub.next({ type, name: name.split(sep).join('/') });
      }
    });
    w.on('raw', (_event, evPath, details) => {
      const watched = (details as { watchedPath?: string }).watchedPath ?? dir;
      // A directory's watch names the entry; a file's own watch names the file itself.
      const full = watched === dir ? join(dir, String(evPath ?? '')) : watched;
      const name = relative(dir, full);
      if (name === '' || name.startsWith('..')) return;
      sub.next({ type: 'raw', name: name.split(sep).join('/') });
    });
    w.on('ready', () => sub.next({ type: 'ready' }));
    w.on('error', (error) => sub.next({ type: 'error', error: error as Error }));
    return () => {
      void w.close();
    };
  });
}
