// Follows snapd: asks its REST API at start and whenever its state file or the snap root
// change (debounced), keeps the last good answer through outages, and says each outage once.
import { existsSync } from 'node:fs';
import { logEvent, type Log } from '../journal/logger.js';
import { readSnapd } from './snapd.js';
import type { SnapdState } from '../world/snapd.js';

export class SnapdFollower {
  /** snapd's last good answer; null: never answered (the snap root is the inventory then). */
  state: SnapdState | null = null;
  /** Answers received so far, changed or not (a sync waiting for "snapd's next word" counts them). */
  answers = 0;

  /** The answer count that says something about now: the next request's, not one already on its way. */
  get nextAnswer(): number {
    return this.answers + (this.busy ? 2 : 1);
  }
  private key = '';
  private down = false;
  private busy = false;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly socket: () => string,
    private readonly log: Log,
    /** snapd said something new: instances or connections changed. */
    private readonly onChange: () => void,
    /** snapd answered, whether or not anything changed. */
    private readonly onAnswer: () => void = () => {},
  ) {}

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** snapd writes its state several times per change: ask once they settle. */
  refreshSoon(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, 100);
  }

  async refresh(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    const socket = this.socket();
    try {
      if (!existsSync(socket)) throw Object.assign(new Error(`${socket} does not exist`), { absent: true });
      const st = await readSnapd({ socket });
      const key = JSON.stringify([[...st.instances].sort(), [...st.plugs].map(([k, v]) => [k, [...v].sort()]).sort(), [...st.slots].map(([k, v]) => [k, [...v].sort()]).sort()]);
      if (this.down) logEvent(this.log, 'snapd-changed', { instances: st.instances.size }, 'snapd answers again');
      this.down = false;
      if (key !== this.key) {
        this.key = key;
        this.state = st;
        const connected = [...st.plugs.values()].reduce((n, p) => n + p.size, 0);
        logEvent(this.log, 'snapd-changed', { instances: st.instances.size, connected_plugs: connected }, `snapd: ${st.instances.size} snaps, ${connected} connected plugs and interfaces`);
        this.answers++;
        this.onChange();
      } else this.answers++;
      this.onAnswer();
    } catch (e) {
      // No socket and never an answer: a system without snapd, not an outage.
      const absent = (e as { absent?: boolean }).absent === true;
      if (!this.down && !(absent && this.state === null)) {
        logEvent(this.log, 'snapd-unavailable', { socket, error: (e as Error).message }, `cannot ask snapd (${(e as Error).message}); ${this.state ? 'keeping the snaps and connections it said last' : 'snaps from the snap root; no links by connection until it answers'}`);
      }
      this.down = !absent || this.state !== null;
    } finally {
      this.busy = false;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.refresh();
      }
    }
  }
}
