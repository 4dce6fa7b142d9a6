// sd_notify(3): READY=1 after the first full reconcile, STATUS= a one-line summary, WATCHDOG=1
// at half the WatchdogSec interval, STOPPING=1 and RELOADING=1. Datagrams through unix-dgram.
import dgram from 'unix-dgram';

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
  if (!target.startsWith('/')) {
    onError(new NotifyError(`NOTIFY_SOCKET=${target}: only path sockets are supported (system services get /run/systemd/notify)`));
    return null;
  }
  const sock = dgram.createSocket('unix_dgram');
  sock.on('error', (e: Error) => onError(e));
  let timer: NodeJS.Timeout | null = null;
  const usec = Number(env.WATCHDOG_USEC);
  const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === process.pid;
  const n: Notifier = {
    target,
    send(fields) {
      // A newline inside a value would start a new assignment: fold it.
      const msg = Buffer.from(Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}`).join('\n'));
      sock.send(msg, 0, msg.length, target, (err?: Error) => err && onError(err));
    },
    startWatchdog() {
      if (!(usec > 0) || !forUs || timer) return;
      timer = setInterval(() => n.send({ WATCHDOG: '1' }), Math.max(1, Math.floor(usec / 2000)));
    },
    close() {
      if (timer) clearInterval(timer);
      sock.close();
    },
  };
  return n;
}
