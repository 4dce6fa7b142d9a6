// sd_listen_fds(3): the sockets systemd passed (socket activation). Descriptors from 3 on,
// LISTEN_FDS of them, meant for this process only when LISTEN_PID is its PID; named by
// LISTEN_FDNAMES. The variables are then removed, so that no child takes them for its own.

export interface ListenFds {
  /** name → descriptor ("unknown" for one systemd did not name). */
  byName: Map<string, number>;
}

const SD_LISTEN_FDS_START = 3;

export function takeListenFds(env: NodeJS.ProcessEnv, pid: number): ListenFds {
  const byName = new Map<string, number>();
  const n = Number(env.LISTEN_FDS);
  const mine = env.LISTEN_PID !== undefined && Number(env.LISTEN_PID) === pid;
  if (mine && Number.isInteger(n) && n > 0 && n < 64) {
    const names = (env.LISTEN_FDNAMES ?? '').split(':');
    for (let i = 0; i < n; i++) {
      const name = names[i] || 'unknown';
      if (!byName.has(name)) byName.set(name, SD_LISTEN_FDS_START + i);
    }
  }
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  return { byName };
}
