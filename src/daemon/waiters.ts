// rundirctl wait: requests the daemon answers when a rundir is live and, if asked, a socket in
// it accepts a connection. Event-driven: every sync of the UID looks again (the rundir's
// watches, and the directories of waited-for sockets, make those syncs happen); the only timer
// is a short back-off while a socket exists but does not accept yet (bind comes before listen,
// and listen makes no inotify event).
import { lstatBelowRoot, UNKNOWN, type MountSnapshot } from '../world/read.js';
import { connect } from 'node:net';

export interface WaitResult {
  ready: boolean;
  /** What it was still waiting for, when not ready. */
  waitingFor?: string;
}

interface Waiter {
  uid: number;
  socket: string | null;
  done: (r: WaitResult) => void;
  timer: NodeJS.Timeout;
  retry: NodeJS.Timeout | null;
  backoff: number;
  connecting: boolean;
}

export interface WaitHost {
  rundir(uid: number): string;
  runtimeRoot(): string;
  /** The mount table as the controller last read it. */
  mounts(): MountSnapshot;
  /** The rundir is there and usable (not being started, closed or purged). */
  live(uid: number): boolean;
}

/** At most this many waits at once (each holds an API connection). */
export const MAX_WAITERS = 48;

export class Waiters {
  private readonly byUid = new Map<number, Set<Waiter>>();
  private count = 0;

  constructor(private readonly host: WaitHost) {}

  /** The socket directories waited for in a UID's rundir (to watch). */
  dirs(uid: number): string[] {
    const out = new Set<string>();
    for (const w of this.byUid.get(uid) ?? []) {
      const parts = w.socket?.split('/') ?? [];
      for (let i = 1; i < parts.length; i++) out.add(parts.slice(0, i).join('/'));
    }
    return [...out];
  }

  wait(uid: number, socket: string | null, timeoutMs: number, signal: AbortSignal): Promise<WaitResult> | null {
    if (this.count >= MAX_WAITERS) return null;
    return new Promise<WaitResult>((resolve) => {
      const w: Waiter = {
        uid,
        socket,
        retry: null,
        backoff: 5,
        connecting: false,
        timer: setTimeout(() => finish({ ready: false, waitingFor: this.host.live(uid) && socket ? `${this.host.rundir(uid)}/${socket} to accept a connection` : `${this.host.rundir(uid)} to be live` }), timeoutMs),
        done: (r) => finish(r),
      };
      const finish = (r: WaitResult) => {
        const set = this.byUid.get(uid);
        if (!set?.delete(w)) return;
        this.count--;
        if (set.size === 0) this.byUid.delete(uid);
        clearTimeout(w.timer);
        if (w.retry) clearTimeout(w.retry);
        resolve(r);
      };
      let set = this.byUid.get(uid);
      if (!set) this.byUid.set(uid, (set = new Set()));
      set.add(w);
      this.count++;
      signal.addEventListener('abort', () => finish({ ready: false, waitingFor: 'the client went away' }), { once: true });
      this.look(w);
    });
  }

  /** A sync of this UID settled: look again. */
  check(uid: number): void {
    for (const w of this.byUid.get(uid) ?? []) this.look(w);
  }

  private look(w: Waiter): void {
    if (w.connecting || !this.host.live(w.uid)) return;
    if (w.socket === null) return w.done({ ready: true });
    const path = `${this.host.rundir(w.uid)}/${w.socket}`;
    let isSocket = false;
    try {
      // Walked from the rundir down: never through a symlink or into a mount that could block.
      const st = lstatBelowRoot(this.host.mounts(), this.host.runtimeRoot(), path);
      isSocket = st !== null && st !== UNKNOWN && st.kind === 'socket';
    } catch {
      // not there yet: its directory's watch says when it is
    }
    if (!isSocket) return;
    w.connecting = true;
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      w.connecting = false;
      w.done({ ready: true });
    });
    c.once('error', () => {
      c.destroy();
      w.connecting = false;
      // There, but not accepting yet: again shortly (listen() makes no event).
      if (w.retry) return;
      w.retry = setTimeout(() => {
        w.retry = null;
        this.look(w);
      }, w.backoff);
      w.backoff = Math.min(w.backoff * 2, 250);
    });
  }

  stop(): void {
    for (const set of [...this.byUid.values()]) for (const w of [...set]) w.done({ ready: false, waitingFor: 'rundird is stopping' });
  }
}
