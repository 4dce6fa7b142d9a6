// sd_notify(3): READY=1 after the first full reconcile, STATUS= a one-line summary, WATCHDOG=1
// at half the WatchdogSec interval, STOPPING=1 and RELOADING=1. One datagram each, from
// rundird's own process (the unit's NotifyAccess=main), through libc's socket calls
// (src/sys/libc.ts). $NOTIFY_SOCKET is a path, or an abstract name (`@…`).
import * as libc from '../sys/libc.js';

export interface Notifier {
  send(fields: Record<string, string>): void;
  /** Starts the watchdog pings systemd asked for (WATCHDOG_USEC); a no-op without. */
  startWatchdog(): void;
  close(): void;
  readonly target: string;
}

export class NotifyError extends Error {}

/** A notifier for $NOTIFY_SOCKET, or null when not started by systemd as Type=notify. */
export function createNotifier(env: NodeJS.ProcessEnv, onError: (e: Error) => void): Notifier | null {
  const target = env.NOTIFY_SOCKET;
  if (!target) return null;
  if (!target.startsWith('/') && !target.startsWith('@')) {
    onError(new NotifyError(`NOTIFY_SOCKET=${target}: neither a path nor an abstract socket (@name)`));
    return null;
  }
  let to: { addr: Buffer; len: number };
  let fd: number;
  try {
    to = libc.sockaddrUn(target);
    fd = libc.dgramSocket();
  } catch (e) {
    onError(new NotifyError(`NOTIFY_SOCKET=${target}: ${(e as Error).message}`));
    return null;
  }
  let timer: NodeJS.Timeout | null = null;
  const usec = Number(env.WATCHDOG_USEC);
  const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === process.pid;
  const n: Notifier = {
    target,
    send(fields) {
      // A newline inside a value would start a new assignment: fold it.
      const msg = Buffer.from(
        Object.entries(fields)
          .map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}`)
          .join('\n'),
      );
      try {
        libc.sendDatagram(fd, msg, to);
      } catch (e) {
        onError(new NotifyError(`sd_notify to ${target}: ${(e as Error).message}`));
      }
    },
    startWatchdog() {
      if (!(usec > 0) || !forUs || timer) return;
      timer = setInterval(() => n.send({ WATCHDOG: '1' }), Math.max(1, Math.floor(usec / 2000)));
    },
    close() {
      if (timer) clearInterval(timer);
      libc.close(fd);
    },
  };
  return n;
}
