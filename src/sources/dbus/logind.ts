// What logind and systemd1 say, kept as facts per UID and turned into hints. User State, Linger
// and Sessions emit no change signals: they are read afresh whenever something about that user
// happens. Every reply and signal is checked; garbage is logged and dropped, never trusted.
import { Bus, systemBusAddress, type BusEvent, type BusSignal } from './bus.js';
import { describeSession, type JobType, type LogindFacts, type RuntimeUnitState, type SessionInfo, type UserFacts } from '../../world/logind.js';
import type { Subscription } from 'rxjs';

const LOGIN1 = 'org.freedesktop.login1';
const SYSTEMD1 = 'org.freedesktop.systemd1';
const MANAGER = 'org.freedesktop.login1.Manager';
const SD_MANAGER = 'org.freedesktop.systemd1.Manager';
const RUNTIME_UNIT = /^user-runtime-dir@(\d+)\.service$/;
/** Session classes of the user manager itself (systemd >= 256). */
const MANAGER_CLASSES = new Set(['manager', 'manager-early']);

export interface LogindCallbacks {
  /** Something about this UID changed: reconcile it. */
  dirty(uid: number): void;
  /** Everything may have changed (logind appeared or went away). */
  dirtyAll(): void;
  /** A line for the UID's timeline. */
  note(uid: number, event: string, detail: string): void;
  error(what: string, e: unknown): void;
  presence(name: 'login1' | 'systemd1', present: boolean): void;
  /** A job of user-runtime-dir@UID was queued: said at once, as a pass may come after it ended. */
  job(uid: number, type: JobType): void;
  /** A job of user-runtime-dir@UID was over before it could be read: a state that may already have passed. */
  jobDone?(uid: number, type: JobType): void;
  /** systemd finished a job for some other unit (a service started or stopped). */
  unitJob?(unit: string): void;
}

const isUid = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < 0xffffffff;
const isPath = (x: unknown): x is string => typeof x === 'string' && x.startsWith('/');

export class Logind {
  readonly bus: Bus;
  private readonly users = new Map<number, UserFacts>();
  private readonly sessions = new Map<string, SessionInfo>();
  /** The session of each UID that closed last: the cause of a closing rundir. */
  private readonly lastClosed = new Map<number, SessionInfo>();
  private readonly jobs = new Map<number, { id: number; type: JobType }>();
  /** user-runtime-dir@UID as its last finished job left it (one entry per UID that had a job). */
  private readonly runtimeUnits = new Map<number, NonNullable<RuntimeUnitState>>();
  private sub: Subscription | null = null;
  /** Signals are handled one after the other: a late read must not undo a later signal. */
  private chain: Promise<void> = Promise.resolve();
  private settle!: () => void;
  /** Resolves once the first connection attempt has an answer: logind loaded, absent, or no bus. */
  readonly settled: Promise<void> = new Promise((r) => (this.settle = r));
  stopDelayUSec: number | null = null;

  constructor(
    private readonly cb: LogindCallbacks,
    address = systemBusAddress(process.env),
    callTimeoutMs = 5000,
  ) {
    this.bus = new Bus({
      address,
      callTimeoutMs,
      follow: {
        [LOGIN1]: [`type='signal',sender='${LOGIN1}',interface='${MANAGER}'`],
        [SYSTEMD1]: [`type='signal',sender='${SYSTEMD1}',interface='${SD_MANAGER}'`],
      },
    });
  }

  get present(): boolean {
    return this.bus.owner(LOGIN1) !== null;
  }

  start(): void {
    this.sub = this.bus.events.subscribe((e) => this.onEvent(e));
    this.bus.start();
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.bus.close();
  }

  facts(uid: number): LogindFacts {
    return { logind: this.present, user: this.users.get(uid) ?? null, job: this.jobs.get(uid)?.type ?? null, runtimeUnit: this.runtimeUnits.get(uid) ?? null };
  }

  session(id: string): SessionInfo | undefined {
    return this.sessions.get(id);
  }

  closedLast(uid: number): SessionInfo | undefined {
    return this.lastClosed.get(uid);
  }

  private onEvent(e: BusEvent): void {
    if (e.type === 'disconnected') {
      this.cb.error('bus', new Error(`${e.error}; reconnecting in ${e.retryInMs} ms`));
      this.settle();
      return;
    }
    if (e.type === 'owner') {
      if (e.name === LOGIN1) {
        this.users.clear();
        this.sessions.clear();
        this.cb.presence('login1', e.owner !== null);
        if (e.owner) this.enqueue(() => this.loadLogind());
        else {
          this.cb.dirtyAll();
          this.settle();
        }
      } else if (e.name === SYSTEMD1) {
        this.jobs.clear();
        this.runtimeUnits.clear();
        this.cb.presence('systemd1', e.owner !== null);
        if (e.owner) this.enqueue(() => this.loadSystemd());
        else this.cb.dirtyAll();
      }
      return;
    }
    if (e.type === 'signal') this.enqueue(() => this.onSignal(e.signal));
  }

  private enqueue(fn: () => Promise<void>): void {
    this.chain = this.chain.then(fn).catch((err: unknown) => this.cb.error('logind', err));
  }

  /** Everything logind knows, read afresh (at start, and whenever logind (re)appears). */
  private async loadLogind(): Promise<void> {
    try {
      const [delay] = await this.bus.call(LOGIN1, '/org/freedesktop/login1', 'org.freedesktop.DBus.Properties', 'Get', 'ss', [MANAGER, 'UserStopDelayUSec']);
      const v = (delay as { value: unknown }).value;
      this.stopDelayUSec = typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : null;
    } catch {
      this.stopDelayUSec = null; // the double, or an old logind
    }
    try {
      const [users] = await this.bus.call(LOGIN1, '/org/freedesktop/login1', MANAGER, 'ListUsers');
      if (!Array.isArray(users)) throw new Error('ListUsers: not an array');
      for (const u of users as unknown[]) {
        const [uid, , path] = (Array.isArray(u) ? u : []) as unknown[];
        if (isUid(uid) && isPath(path)) await this.readUser(uid, path);
      }
      const [sessions] = await this.bus.call(LOGIN1, '/org/freedesktop/login1', MANAGER, 'ListSessions');
      for (const s of (Array.isArray(sessions) ? sessions : []) as unknown[]) {
        const [id, , , , path] = (Array.isArray(s) ? s : []) as unknown[];
        if (typeof id === 'string' && isPath(path)) await this.readSession(path);
      }
    } catch (e) {
      this.cb.error('login1', e);
    }
    this.cb.dirtyAll();
    this.settle();
  }

  private async loadSystemd(): Promise<void> {
    try {
      // systemd sends job signals only to subscribed clients.
      await this.bus.call(SYSTEMD1, '/org/freedesktop/systemd1', SD_MANAGER, 'Subscribe');
    } catch (e) {
      this.cb.error('systemd1 Subscribe', e);
      return;
    }
    try {
      // Jobs already in flight: (id, unit, type, state, job path, unit path).
      const [jobs] = await this.bus.call(SYSTEMD1, '/org/freedesktop/systemd1', SD_MANAGER, 'ListJobs');
      for (const j of (Array.isArray(jobs) ? jobs : []) as unknown[]) {
        const [id, unit, type] = (Array.isArray(j) ? j : []) as unknown[];
        const m = typeof unit === 'string' ? RUNTIME_UNIT.exec(unit) : null;
        if (m && typeof id === 'number' && (type === 'start' || type === 'stop')) this.jobs.set(Number(m[1]), { id, type });
      }
    } catch {
      // ListJobs is a nicety: JobNew signals carry on from here.
    }
    this.cb.dirtyAll();
  }

  private async readUser(uid: number, path: string): Promise<void> {
    try {
      const p = await this.bus.getAll(LOGIN1, path, 'org.freedesktop.login1.User');
      const sessions = Array.isArray(p.Sessions) ? (p.Sessions as unknown[]).map((s) => (Array.isArray(s) ? String(s[0]) : '')).filter(Boolean) : [];
      this.users.set(uid, { uid, state: typeof p.State === 'string' ? p.State : 'unknown', linger: p.Linger === true, sessions });
    } catch (e) {
      // Gone meanwhile (NoSuchUser / UnknownObject): logind no longer knows the user.
      this.users.delete(uid);
      if (!String((e as Error).message).match(/NoSuch|UnknownObject|UnknownMethod|not exist/i)) this.cb.error(`login1 user ${uid}`, e);
    }
    this.cb.dirty(uid);
  }

  private async readSession(path: string): Promise<SessionInfo | null> {
    try {
      const p = await this.bus.getAll(LOGIN1, path, 'org.freedesktop.login1.Session');
      const user = Array.isArray(p.User) ? p.User[0] : undefined;
      if (typeof p.Id !== 'string' || !isUid(user)) throw new Error(`session ${path}: no Id or User`);
      const s: SessionInfo = { id: p.Id, uid: user, service: String(p.Service ?? ''), tty: String(p.TTY ?? ''), remoteHost: String(p.RemoteHost ?? ''), class: String(p.Class ?? '') };
      this.sessions.set(s.id, s);
      return s;
    } catch (e) {
      this.cb.error('login1 session', e);
      return null;
    }
  }

  private garbage(s: BusSignal): void {
    this.cb.error('bus signal', new Error(`${s.from} ${s.member} with signature "${s.signature}" and body ${JSON.stringify(s.body).slice(0, 200)}: ignored`));
  }

  private async onSignal(s: BusSignal): Promise<void> {
    if (s.from === LOGIN1 && s.iface === MANAGER) {
      if ((s.member === 'UserNew' || s.member === 'UserRemoved') && s.signature === 'uo' && isUid(s.body[0]) && isPath(s.body[1])) {
        const uid = s.body[0];
        if (s.member === 'UserNew') {
          this.cb.note(uid, 'user-new', 'logind: UserNew');
          await this.readUser(uid, s.body[1]);
        } else {
          this.users.delete(uid);
          this.cb.note(uid, 'user-removed', 'logind: UserRemoved');
          this.cb.dirty(uid);
        }
        return;
      }
      if ((s.member === 'SessionNew' || s.member === 'SessionRemoved') && s.signature === 'so' && typeof s.body[0] === 'string' && isPath(s.body[1])) {
        const id = s.body[0];
        if (s.member === 'SessionNew') {
          const info = await this.readSession(s.body[1]);
          if (!info) return;
          this.cb.note(info.uid, 'session-new', describeSession(info));
          const path = await this.userPath(info.uid);
          if (path) await this.readUser(info.uid, path);
        } else {
          const info = this.sessions.get(id);
          this.sessions.delete(id);
          // A session whose read failed is still traced to its user through User.Sessions; failing
          // that, every known user is read again (they emit no change signals of their own).
          const uid = info?.uid ?? [...this.users.values()].find((u) => u.sessions.includes(id))?.uid;
          if (info) {
            // The cause of a closing rundir is the last session that pinned it. The user
            // manager's own session (systemd >= 256: class manager, service systemd-user)
            // closes as a consequence of the purge, never its cause.
            if (!MANAGER_CLASSES.has(info.class)) this.lastClosed.set(info.uid, info);
            this.cb.note(info.uid, 'session-removed', describeSession(info));
          }
          for (const u of uid !== undefined ? [uid] : [...this.users.keys()]) {
            const path = await this.userPath(u);
            if (path) await this.readUser(u, path);
            else {
              this.users.delete(u);
              this.cb.dirty(u);
            }
          }
        }
        return;
      }
      if (s.member === 'PrepareForShutdown') return;
      return this.garbage(s);
    }
    if (s.from === SYSTEMD1 && s.iface === SD_MANAGER) {
      if (s.member === 'JobNew' && s.signature === 'uos' && typeof s.body[0] === 'number' && isPath(s.body[1]) && typeof s.body[2] === 'string') {
        const m = RUNTIME_UNIT.exec(s.body[2]);
        if (!m) return;
        const uid = Number(m[1]);
        const type = await this.jobType(s.body[1]);
        if (type === null) {
          // Gone before it could be read: it has finished, so the unit's state says what it did
          // (active: a start; inactive or failed: a stop). Noted as the brief state it was, not
          // as a pending job. (Guessing as if it were still pending called a done start a stop.)
          const active = await this.activeState(s.body[2]);
          this.noteUnit(uid, active);
          const done: JobType | null = active === 'active' ? 'start' : active === 'inactive' || active === 'failed' ? 'stop' : null;
          this.cb.note(uid, 'job-done', `systemd: job ${s.body[0]} for ${s.body[2]} finished before it could be read (unit ${active})`);
          if (done) this.cb.jobDone?.(uid, done);
          this.cb.dirty(uid);
          return;
        }
        this.jobs.set(uid, { id: s.body[0], type });
        this.runtimeUnits.delete(uid); // what it leaves is known when it is over
        this.cb.note(uid, `job-${type}`, `systemd: ${type} job ${s.body[0]} queued for ${s.body[2]}`);
        this.cb.job(uid, type);
        this.cb.dirty(uid);
        return;
      }
      if (s.member === 'JobRemoved' && s.signature === 'uoss' && typeof s.body[0] === 'number' && typeof s.body[2] === 'string') {
        const m = RUNTIME_UNIT.exec(s.body[2]);
        if (!m) {
          if (s.body[3] === 'done' && /\.(service|scope)$/.test(s.body[2])) this.cb.unitJob?.(s.body[2]);
          return;
        }
        const uid = Number(m[1]);
        const job = this.jobs.get(uid);
        if (job?.id === s.body[0]) this.jobs.delete(uid);
        // JobRemoved does not say start or stop: the unit's ActiveState does.
        const active = await this.activeState(s.body[2]);
        this.noteUnit(uid, active);
        this.cb.note(uid, 'job-done', `systemd: job ${s.body[0]} for ${s.body[2]} ${String(s.body[3])}, unit ${active}`);
        this.cb.dirty(uid);
        return;
      }
      if (s.member === 'JobNew' || s.member === 'JobRemoved') return this.garbage(s);
    }
  }

  /**
   * Asks logind to keep the UID's rundir for good (linger), as `loginctl enable-linger` does:
   * SetUserLinger(uid, true, interactive=false). Logind emits no change signal for Linger, so
   * the user is read again. Throws what logind answered.
   */
  async setUserLinger(uid: number): Promise<void> {
    if (this.bus.owner(LOGIN1) === null) throw new Error('logind is not on the bus');
    await this.bus.call(LOGIN1, '/org/freedesktop/login1', MANAGER, 'SetUserLinger', 'ubb', [uid, true, false]);
    const path = await this.userPath(uid);
    if (path) await this.readUser(uid, path);
    else this.cb.dirty(uid);
  }

  /** A unit's processes (GetUnitProcesses, systemd >= 238); null when systemd cannot say. */
  async unitPids(unit: string): Promise<number[] | null> {
    if (this.bus.owner(SYSTEMD1) === null) return null;
    try {
      const [procs] = await this.bus.call(SYSTEMD1, '/org/freedesktop/systemd1', SD_MANAGER, 'GetUnitProcesses', 's', [unit]);
      if (!Array.isArray(procs)) return null;
      return (procs as unknown[]).map((p) => (Array.isArray(p) ? p[1] : null)).filter((pid): pid is number => typeof pid === 'number' && Number.isInteger(pid) && pid > 0);
    } catch (e) {
      // A unit that is gone has no processes; anything else: systemd cannot say.
      return /NoSuchUnit|not loaded/i.test(String((e as Error).message)) ? [] : null;
    }
  }

  private async userPath(uid: number): Promise<string | null> {
    try {
      const [p] = await this.bus.call(LOGIN1, '/org/freedesktop/login1', MANAGER, 'GetUser', 'u', [uid]);
      return isPath(p) ? p : null;
    } catch {
      return null;
    }
  }

  /** The job's type, or null when the job is gone already (or says something else). */
  private async jobType(path: string): Promise<JobType | null> {
    try {
      const t = await this.bus.getProperty(SYSTEMD1, path, 'org.freedesktop.systemd1.Job', 'JobType');
      if (t === 'start' || t === 'stop') return t;
    } catch {
      // gone meanwhile
    }
    return null;
  }

  /** The unit's ActiveState; `not-loaded` when systemd has unloaded it (stopped, then collected). */
  private async activeState(unit: string): Promise<string> {
    try {
      const [path] = await this.bus.call(SYSTEMD1, '/org/freedesktop/systemd1', SD_MANAGER, 'GetUnit', 's', [unit]);
      const v = await this.bus.getProperty(SYSTEMD1, String(path), 'org.freedesktop.systemd1.Unit', 'ActiveState');
      return typeof v === 'string' ? v : 'unknown';
    } catch (e) {
      return /NoSuchUnit|not loaded/i.test(String((e as Error).message)) ? 'not-loaded' : 'unknown';
    }
  }

  /** What a finished job of user-runtime-dir@UID left: running, stopped, or (unreadable) not known. */
  private noteUnit(uid: number, active: string): void {
    const state: RuntimeUnitState = active === 'active' ? 'active' : active === 'inactive' || active === 'failed' || active === 'not-loaded' ? 'inactive' : null;
    if (state) this.runtimeUnits.set(uid, state);
    else this.runtimeUnits.delete(uid);
  }
}
