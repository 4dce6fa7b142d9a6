// sd_notify(3): READY=1 after the first full reconcile, STATUS= a one-line summary, WATCHDOG=1
// at half the WatchdogSec interval, STOPPING=1 and RELOADING=1. Datagrams through unix-dgram;
// without it (not built on this machine), each message through systemd-notify(1), which the
// unit's NotifyAccess=all lets through (it is a child of rundird, in its cgroup).
import { spawn } from 'node:child_process';
import { dgram } from '../journal/dgram.js';

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
  const d = dgram();
  const sock = d?.createSocket('unix_dgram') ?? null;
  sock?.on('error', (e: Error) => onError(e));
  const viaCommand = (msg: string[]) => {
    const c = spawn('systemd-notify', msg, { stdio: 'ignore' });
    c.on('error', (e) => onError(new NotifyError(`systemd-notify: ${e.message}`)));
    c.on('exit', (code) => code !== 0 && code !== null && onError(new NotifyError(`systemd-notify ${msg.join(' ')}: exit ${code}`)));
  };
  let timer: NodeJS.Timeout | null = null;
  const usec = Number(env.WATCHDOG_USEC);
  const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === process.pid;
  const n: Notifier = {
    target,
    send(fields) {
      // A newline inside a value would start a new assignment: fold it.
      const lines = Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}`);
      if (!sock) return viaCommand(lines);
      const msg = Buffer.from(lines.join('\n'));
      sock.send(msg, 0, msg.length, target, (err?: Error) => err && onError(err));
    },
    startWatchdog() {
      if (!(usec > 0) || !forUs || timer) return;
      timer = setInterval(() => n.send({ WATCHDOG: '1' }), Math.max(1, Math.floor(usec / 2000)));
    },
    close() {
      if (timer) clearInterval(timer);
      sock?.close();
    },
  };
  return n;
}
