// Mount-table changes as hints. The kernel signals /proc/*/mountinfo changes with POLLPRI,
// which Node cannot wait for, so a long-lived `findmnt --poll` (util-linux) waits for us and
// prints one line per change; it costs nothing while nothing is mounted. A mountinfo that is a
// plain file (a sandbox or a test) is watched with inotify instead.
import { Observable } from 'rxjs';
import { spawn } from 'node:child_process';
import { dirname, basename } from 'node:path';
import { watchDir } from './watchDir.js';

export type MountEvent = { type: 'changed' } | { type: 'ready'; via: 'findmnt' | 'inotify' } | { type: 'error'; error: Error; fatal: boolean };

export function isProcMountinfo(path: string): boolean {
  return /^\/proc\/(self|thread-self|\d+)\/mountinfo$/.test(path);
}

const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 30_000;

function findmntPoll(findmnt: string): Observable<MountEvent> {
  return new Observable<MountEvent>((sub) => {
    let child: ReturnType<typeof spawn> | null = null;
    let stopped = false;
    let backoff = RESTART_MIN_MS;
    let timer: NodeJS.Timeout | null = null;
    const start = () => {
      const c = spawn(findmnt, ['--poll', '--noheadings', '-o', 'ACTION,TARGET'], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      let started = false;
      c.on('spawn', () => {
        started = true;
        sub.next({ type: 'ready', via: 'findmnt' });
        // Whatever changed while it was not running counts as a change.
        sub.next({ type: 'changed' });
      });
      c.stdout!.on('data', () => {
        backoff = RESTART_MIN_MS;
        sub.next({ type: 'changed' });
      });
      let stderr = '';
      c.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-500)));
      c.on('error', (error) => {
        // ENOENT: no findmnt on this system; nothing will restart it.
        sub.next({ type: 'error', error, fatal: !started });
      });
      c.on('exit', (code, signal) => {
        child = null;
        if (stopped || !started) return;
        sub.next({ type: 'error', error: new Error(`findmnt --poll exited (${signal ?? code}) ${stderr.trim()}`), fatal: false });
        timer = setTimeout(start, backoff);
        backoff = Math.min(backoff * 2, RESTART_MAX_MS);
      });
    };
    start();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      child?.kill('SIGTERM');
    };
  });
}

function fileWatch(path: string): Observable<MountEvent> {
  return new Observable<MountEvent>((sub) => {
    const s = watchDir(dirname(path)).subscribe((e) => {
      if (e.type === 'ready') sub.next({ type: 'ready', via: 'inotify' });
      else if (e.type === 'error') sub.next({ type: 'error', error: e.error, fatal: false });
      else if (e.name === basename(path)) sub.next({ type: 'changed' });
    });
    return () => s.unsubscribe();
  });
}

export function watchMountTable(mountinfo: string, findmnt = 'findmnt'): Observable<MountEvent> {
  return isProcMountinfo(mountinfo) ? findmntPoll(findmnt) : fileWatch(mountinfo);
}
