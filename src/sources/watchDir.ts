// One directory's direct entries as an rxjs stream, through chokidar (inotify). Used for the
// runtime root, each live rundir and the snap root; a caller re-arms by unsubscribing and
// subscribing again (a watch set before a mount sees nothing inside it).
import { Observable } from 'rxjs';
import { watch } from 'chokidar';
import { watch as fsWatch } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { inotifyDoubt } from './inotifyDoubt.js';

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
  if (opts.rawOnly && opts.depth === 0) return rawWatch(dir);
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

/**
 * A directory's own inotify events, and nothing else. chokidar re-reads the whole directory
 * (readdir and an lstat per entry, on the thread pool) on every event to diff its entries;
 * for the hot watches (the runtime root, each rundir and its private dirs) that work was most
 * of the daemon's CPU and its latency tail, and we never use the diff: an event is only a hint
 * to re-read. So these use the kernel watch directly; chokidar keeps the snap root (depth 1).
 */
function rawWatch(dir: string): Observable<DirEvent> {
  return new Observable<DirEvent>((sub) => {
    let w: ReturnType<typeof fsWatch>;
    try {
      w = fsWatch(dir, { persistent: true }, (_type, name) => {
        inotifyDoubt.event();
        if (name) sub.next({ type: 'raw', name: String(name) });
      });
    } catch (e) {
      sub.next({ type: 'error', error: e as Error });
      return;
    }
    w.on('error', (error) => sub.next({ type: 'error', error }));
    // Armed synchronously: 'ready' right after, so that a caller re-reads what came before.
    const t = setImmediate(() => sub.next({ type: 'ready' }));
    return () => {
      clearImmediate(t);
      w.close();
    };
  });
}
