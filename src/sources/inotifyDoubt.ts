// Lost inotify events, noticed. The kernel drops events once max_queued_events of them wait
// unread, and says so with IN_Q_OVERFLOW; but libuv drops that event (its wd is -1, no watcher
// of its own), so Node never sees it. What libuv does do is read the descriptor until it is
// empty, in one go, and hand every event to its watcher in the same turn of the loop. So the
// events of one turn count what was waiting: once they reach half the kernel's queue, events
// may have been lost, and the caller reads the whole world again (level-triggered). Half, not
// all: events of watches already closed are skipped uncounted, and doubt costs one resync.
import { readFileSync } from 'node:fs';

const DEFAULT_QUEUE = 16384;

function kernelQueue(): number {
  try {
    const n = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_QUEUE;
  } catch {
    return DEFAULT_QUEUE;
  }
}

class InotifyDoubt {
  /** Events in the current turn of the loop. */
  private count = 0;
  private said = false;
  private turnEnd: NodeJS.Immediate | null = null;
  private limit = 0;
  private listener: ((events: number) => void) | null = null;

  /** Who is told (once a turn) that events may have been lost; one listener, the daemon's. */
  onDoubt(cb: ((events: number) => void) | null): void {
    this.listener = cb;
    this.limit = Math.max(64, Math.floor(kernelQueue() / 2));
  }

  /** The events that arrive in one turn before doubt (for the tests and the docs). */
  get threshold(): number {
    return this.limit;
  }

  /** One inotify event reached a watcher of ours. */
  event(): void {
    if (this.listener === null) return;
    this.count++;
    this.turnEnd ??= setImmediate(() => {
      this.turnEnd = null;
      this.count = 0;
      this.said = false;
    });
    if (!this.said && this.count >= this.limit) {
      this.said = true;
      this.listener(this.count);
    }
  }
}

export const inotifyDoubt = new InotifyDoubt();
