// What logind and systemd say about a UID, as plain data.

export interface SessionInfo {
  id: string;
  uid: number;
  service: string;
  tty: string;
  remoteHost: string;
  class: string;
}

export interface UserFacts {
  uid: number;
  /** logind's User.State: offline, lingering, online, active, closing. */
  state: string;
  linger: boolean;
  sessions: string[];
}

/** A pending job of user-runtime-dir@UID.service. */
export type JobType = 'start' | 'stop';

/** user-runtime-dir@UID.service as its last finished job left it; null: not known (no job seen since rundird or systemd started, or one is running). */
export type RuntimeUnitState = 'active' | 'inactive' | null;

export interface LogindFacts {
  /** logind is on the bus. */
  logind: boolean;
  user: UserFacts | null;
  job: JobType | null;
  runtimeUnit?: RuntimeUnitState;
}

/** "session 3 (sshd, from 10.0.0.9)": how records name a session. */
export function describeSession(s: SessionInfo | null): string {
  if (!s) return 'the last session';
  return `session ${s.id} (${s.service || 'unknown service'}${s.tty ? `, ${s.tty}` : ''}${s.remoteHost ? `, from ${s.remoteHost}` : ''})`;
}

/** The rundir lifecycle as logind and systemd drive it. */
export type LifecycleState = 'absent' | 'starting' | 'live' | 'closing' | 'stopping';
