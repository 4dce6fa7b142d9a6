// A test double for logind and systemd1 that speaks real D-Bus on a private bus and replays
// the orderings of real systems against a real temporary runtime tree.
//   node fake-logind.mjs ADDRESS RUNTIME_ROOT FLAVOR     FLAVOR: systemd256 | systemd249 | elogind
// Commands on stdin, one JSON object a line; "ok N" (or "err N message") on stdout when done:
//   {"op":"login","uid":U,"session":"c1","mount":true,"service":"sshd","tty":"","remote":"10.0.0.9"}
//   {"op":"logout","session":"c1","delayMs":50}     {"op":"garbage"}   {"op":"exit"}
//   {"op":"unit","name":"kiosk.service","pids":[123]}  a unit started: JobNew/JobRemoved, GetUnitProcesses
//   {"op":"stopdelay","usec":500000}                   UserStopDelayUSec from now on
//   {"op":"refuse-linger","message":"..."}             SetUserLinger fails (null: works again)
//   {"op":"linger-calls"}                              prints `linger-calls [[uid,enable],…]`
//   {"op":"stale-user","uid":U}    a restarted logind still holds a user it will collect: UserNew, closing, no session
//   {"op":"collect-user","uid":U}  …and collects it: the stop of its stopped runtime unit (over before it can be read), UserRemoved
import dbus from 'dbus-next';
import { mkdirSync, rmSync, chownSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';

const { Interface, ACCESS_READ } = dbus.interface;
const [address, runtimeRoot, flavor] = process.argv.slice(2);
const withSystemd = flavor !== 'elogind';
const isRoot = process.geteuid() === 0;
const bus = dbus.sessionBus({ busAddress: address });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const users = new Map(); // uid -> User iface
const sessions = new Map(); // id -> { uid, service, tty, remote }
const units = new Map(); // name -> Unit iface
const unitPids = new Map(); // name -> pids (GetUnitProcesses)
let stopDelayUSec = 10_000_000;
let jobSeq = 100;
const lingerCalls = []; // [uid, enable] as asked over the bus
let lingerRefusal = null; // a message: SetUserLinger fails with it (EUNATCH, as a minimal 257 root does)

const userPath = (uid) => `/org/freedesktop/login1/user/_${uid}`;
const sessionPath = (id) => `/org/freedesktop/login1/session/${id}`;
const unitPath = (name) => `/org/freedesktop/systemd1/unit/${name.replace(/[^A-Za-z0-9]/g, (c) => '_' + c.charCodeAt(0).toString(16).padStart(2, '0'))}`;

class Manager extends Interface {
  ListUsers() { return [...users.values()].map((u) => [u.uid, u.name, userPath(u.uid)]); }
  ListSessions() { return [...sessions.entries()].map(([id, s]) => [id, s.uid, `user${s.uid}`, '', sessionPath(id)]); }
  GetUser(uid) {
    if (!users.has(uid)) throw new dbus.DBusError('org.freedesktop.login1.NoSuchUser', `No user ${uid} known`);
    return userPath(uid);
  }
  GetSession(id) { return sessionPath(id); }
  UserNew(uid, path) { return [uid, path]; }
  UserRemoved(uid, path) { return [uid, path]; }
  SessionNew(id, path) { return [id, path]; }
  SessionRemoved(id, path) { return [id, path]; }
  PrepareForShutdown(b) { return b; }
  get UserStopDelayUSec() { return stopDelayUSec; }
  // As logind: linger on starts the user's runtime dir (its tmpfs) at once, whatever is at the path.
  SetUserLinger(uid, enable, _interactive) {
    if (lingerRefusal) throw new dbus.DBusError('System.Error.EUNATCH', lingerRefusal);
    lingerCalls.push([uid, enable]);
    let user = users.get(uid);
    if (user || !enable) { if (user) user.linger = enable; return; }
    user = new User(uid);
    user.linger = true;
    user.state = 'lingering';
    users.set(uid, user);
    bus.export(userPath(uid), user);
    void runJob(uid, 'start', async () => {
      manager.UserNew(uid, userPath(uid));
      await sleep(5);
      makeRundir(uid, true);
    });
  }
}
Manager.configureMembers({
  properties: { UserStopDelayUSec: { signature: 't', access: ACCESS_READ } },
  methods: {
    ListUsers: { outSignature: 'a(uso)' },
    ListSessions: { outSignature: 'a(susso)' },
    GetUser: { inSignature: 'u', outSignature: 'o' },
    GetSession: { inSignature: 's', outSignature: 'o' },
    SetUserLinger: { inSignature: 'ubb' },
  },
  signals: { UserNew: { signature: 'uo' }, UserRemoved: { signature: 'uo' }, SessionNew: { signature: 'so' }, SessionRemoved: { signature: 'so' }, PrepareForShutdown: { signature: 'b' } },
});

class User extends Interface {
  constructor(uid) {
    super('org.freedesktop.login1.User');
    this.uid = uid; this.name = `user${uid}`; this.state = 'opening'; this.linger = false;
  }
  get UID() { return this.uid; }
  get GID() { return this.uid; }
  get Name() { return this.name; }
  get RuntimePath() { return `${runtimeRoot}/${this.uid}`; }
  get State() { return this.state; }
  get Linger() { return this.linger; }
  get Sessions() { return [...sessions.entries()].filter(([, s]) => s.uid === this.uid).map(([id]) => [id, sessionPath(id)]); }
}
User.configureMembers({ properties: {
  UID: { signature: 'u', access: ACCESS_READ }, GID: { signature: 'u', access: ACCESS_READ }, Name: { signature: 's', access: ACCESS_READ },
  RuntimePath: { signature: 's', access: ACCESS_READ }, State: { signature: 's', access: ACCESS_READ }, Linger: { signature: 'b', access: ACCESS_READ },
  Sessions: { signature: 'a(so)', access: ACCESS_READ },
} });

class Session extends Interface {
  constructor(id, s) { super('org.freedesktop.login1.Session'); this.id = id; this.s = s; }
  get Id() { return this.id; }
  get User() { return [this.s.uid, userPath(this.s.uid)]; }
  get Service() { return this.s.service; }
  get TTY() { return this.s.tty; }
  get RemoteHost() { return this.s.remote; }
  get Class() { return this.s.class ?? 'user'; }
}
Session.configureMembers({ properties: {
  Id: { signature: 's', access: ACCESS_READ }, User: { signature: '(uo)', access: ACCESS_READ }, Service: { signature: 's', access: ACCESS_READ },
  TTY: { signature: 's', access: ACCESS_READ }, RemoteHost: { signature: 's', access: ACCESS_READ }, Class: { signature: 's', access: ACCESS_READ },
} });

class SystemdManager extends Interface {
  Subscribe() {}
  GetUnit(name) {
    if (!units.has(name)) throw new dbus.DBusError('org.freedesktop.systemd1.NoSuchUnit', `Unit ${name} not loaded.`);
    return unitPath(name);
  }
  GetUnitProcesses(name) {
    if (!unitPids.has(name)) throw new dbus.DBusError('org.freedesktop.systemd1.NoSuchUnit', `Unit ${name} not loaded.`);
    return unitPids.get(name).map((pid) => [`/system.slice/${name}`, pid, 'cmd']);
  }
  JobNew(id, path, unit) { return [id, path, unit]; }
  JobRemoved(id, path, unit, result) { return [id, path, unit, result]; }
}
SystemdManager.configureMembers({
  methods: { Subscribe: {}, GetUnit: { inSignature: 's', outSignature: 'o' }, GetUnitProcesses: { inSignature: 's', outSignature: 'a(sus)' } },
  signals: { JobNew: { signature: 'uos' }, JobRemoved: { signature: 'uoss' } },
});

class Unit extends Interface {
  constructor() { super('org.freedesktop.systemd1.Unit'); this.state = 'inactive'; }
  get ActiveState() { return this.state; }
}
Unit.configureMembers({ properties: { ActiveState: { signature: 's', access: ACCESS_READ } } });

class Job extends Interface {
  constructor(type, unit) { super('org.freedesktop.systemd1.Job'); this.type = type; this.unit = unit; }
  get JobType() { return this.type; }
}
Job.configureMembers({ properties: { JobType: { signature: 's', access: ACCESS_READ } } });

const manager = new Manager('org.freedesktop.login1.Manager');
const sdManager = new SystemdManager('org.freedesktop.systemd1.Manager');

function unitOf(uid) {
  const name = `user-runtime-dir@${uid}.service`;
  if (!units.has(name)) {
    const u = new Unit();
    units.set(name, u);
    bus.export(unitPath(name), u);
  }
  return [name, units.get(name)];
}

async function runJob(uid, type, work) {
  const [name, unit] = unitOf(uid);
  const id = ++jobSeq;
  const path = `/org/freedesktop/systemd1/job/${id}`;
  bus.export(path, new Job(type, name));
  sdManager.JobNew(id, path, name);
  await work();
  unit.state = type === 'start' ? 'active' : 'inactive';
  sdManager.JobRemoved(id, path, name, 'done');
  bus.unexport(path);
}

function makeRundir(uid, mount) {
  const p = `${runtimeRoot}/${uid}`;
  // user-runtime-dir: mkdir as root (an existing plain dir is used as it is), then the tmpfs.
  try { mkdirSync(p, { mode: 0o700 }); } catch (e) { if (e.code !== 'EEXIST') throw e; }
  let mounted = false;
  try { execFileSync('mountpoint', ['-q', p]); mounted = true; } catch { /* not a mount point */ }
  if (mounted) return; // "If the path is already a mount point it does nothing."
  if (mount && isRoot) execFileSync('mount', ['-t', 'tmpfs', '-o', `mode=0700,uid=${uid},gid=${uid},size=1m`, 'tmpfs', p]);
  else if (isRoot) chownSync(p, uid, uid);
}

function purgeRundir(uid) {
  const p = `${runtimeRoot}/${uid}`;
  for (const e of readdirSync(p)) rmSync(`${p}/${e}`, { recursive: true, force: true });
  try { execFileSync('umount', ['-l', p], { stdio: 'ignore' }); } catch { /* a plain dir */ }
  rmSync(p, { recursive: true, force: true });
}

async function login(c) {
  const { uid } = c;
  const newUser = !users.has(uid);
  const user = users.get(uid) ?? new User(uid);
  sessions.set(c.session, { uid, service: c.service ?? 'login', tty: c.tty ?? '', remote: c.remote ?? '' });
  bus.export(sessionPath(c.session), new Session(c.session, sessions.get(c.session)));
  if (newUser) { users.set(uid, user); bus.export(userPath(uid), user); }
  if (flavor === 'elogind') {
    if (newUser) makeRundir(uid, c.mount);
    user.state = 'active';
    if (newUser) manager.UserNew(uid, userPath(uid));
    manager.SessionNew(c.session, sessionPath(c.session));
    return;
  }
  user.state = 'active';
  if (!newUser || user.stopping) {
    // Re-login during the stop delay: the pending stop is cancelled, nothing is made again.
    user.cancelStop = true;
    manager.SessionNew(c.session, sessionPath(c.session));
    return;
  }
  // Signals as soon as the start job is queued; the mount comes after (DESIGN.md).
  await runJob(uid, 'start', async () => {
    manager.UserNew(uid, userPath(uid));
    manager.SessionNew(c.session, sessionPath(c.session));
    await sleep(c.mountDelayMs ?? 5);
    makeRundir(uid, c.mount);
  });
  // systemd >= 256: the user manager has a session of its own (class manager, service
  // systemd-user); it never pins the user, and closes after the login session.
  if (flavor === 'systemd256') {
    const m = `m${uid}`;
    sessions.set(m, { uid, service: 'systemd-user', tty: '', remote: '', class: 'manager' });
    bus.export(sessionPath(m), new Session(m, sessions.get(m)));
    manager.SessionNew(m, sessionPath(m));
  }
}

async function logout(c) {
  const s = sessions.get(c.session);
  if (!s) throw new Error(`no session ${c.session}`);
  const user = users.get(s.uid);
  sessions.delete(c.session);
  bus.unexport(sessionPath(c.session));
  manager.SessionRemoved(c.session, sessionPath(c.session));
  if ([...sessions.values()].some((x) => x.uid === s.uid && x.class !== 'manager') || user.linger) return;
  user.state = 'closing';
  user.cancelStop = false;
  await sleep(c.delayMs ?? 20); // UserStopDelaySec
  if (user.cancelStop) return;
  const m = `m${s.uid}`;
  if (sessions.has(m)) {
    sessions.delete(m);
    bus.unexport(sessionPath(m));
    manager.SessionRemoved(m, sessionPath(m));
    await sleep(5);
  }
  const gone = () => { users.delete(s.uid); bus.unexport(userPath(s.uid)); manager.UserRemoved(s.uid, userPath(s.uid)); };
  if (flavor === 'elogind') { purgeRundir(s.uid); gone(); return; }
  if (c.purgeBeforeJob) {
    // As on a loaded machine: the purge is over, and its stop job gone, before rundird can
    // read the job (its JobNew comes late, and GetJob then finds nothing).
    purgeRundir(s.uid);
    await sleep(100);
    const [name, unit] = unitOf(s.uid);
    unit.state = 'inactive';
    const id = ++jobSeq;
    sdManager.JobNew(id, `/org/freedesktop/systemd1/job/${id}`, name);
    sdManager.JobRemoved(id, `/org/freedesktop/systemd1/job/${id}`, name, 'done');
    gone();
    return;
  }
  await runJob(s.uid, 'stop', async () => {
    if (flavor === 'systemd249') gone(); // UserRemoved may come before the removal
    await sleep(2);
    purgeRundir(s.uid);
  });
  if (flavor === 'systemd256') gone();
}

bus.on('error', () => process.exit(3));
await bus.requestName('org.freedesktop.login1', 0);
bus.export('/org/freedesktop/login1', manager);
if (withSystemd) {
  await bus.requestName('org.freedesktop.systemd1', 0);
  bus.export('/org/freedesktop/systemd1', sdManager);
}
process.stdout.write('ready\n');

let n = 0;
// Commands run as they come (a login may arrive during a logout's stop delay); each says when done.
async function run(c, k) {
  try {
    if (c.op === 'login') await login(c);
    else if (c.op === 'logout') await logout(c);
    else if (c.op === 'linger') { users.get(c.uid).linger = c.on; }
    else if (c.op === 'stopdelay') { stopDelayUSec = c.usec; }
    else if (c.op === 'refuse-linger') { lingerRefusal = c.message ?? null; }
    else if (c.op === 'stale-user') {
      const user = new User(c.uid);
      user.state = 'closing';
      users.set(c.uid, user);
      bus.export(userPath(c.uid), user);
      manager.UserNew(c.uid, userPath(c.uid));
    } else if (c.op === 'collect-user') {
      const [name] = unitOf(c.uid);
      const id = ++jobSeq;
      sdManager.JobNew(id, `/org/freedesktop/systemd1/job/${id}`, name);
      sdManager.JobRemoved(id, `/org/freedesktop/systemd1/job/${id}`, name, 'done');
      users.delete(c.uid);
      bus.unexport(userPath(c.uid));
      manager.UserRemoved(c.uid, userPath(c.uid));
    }
    else if (c.op === 'linger-calls') { process.stdout.write(`linger-calls ${JSON.stringify(lingerCalls)}\n`); }
    else if (c.op === 'unit') {
      unitPids.set(c.name, c.pids);
      const id = ++jobSeq;
      const path = `/org/freedesktop/systemd1/job/${id}`;
      sdManager.JobNew(id, path, c.name);
      sdManager.JobRemoved(id, path, c.name, 'done');
    }
    else if (c.op === 'garbage') {
      // A signal with the right name and the wrong signature, and one with a bad object path.
      bus.send(new dbus.Message({ type: dbus.MessageType.SIGNAL, path: '/org/freedesktop/login1', interface: 'org.freedesktop.login1.Manager', member: 'UserNew', signature: 's', body: ['not-a-uid'] }));
      bus.send(new dbus.Message({ type: dbus.MessageType.SIGNAL, path: '/org/freedesktop/login1', interface: 'org.freedesktop.login1.Manager', member: 'UserNew', signature: 'uo', body: [4294967295, '/nowhere'] }));
    } else if (c.op === 'exit') process.exit(0);
    process.stdout.write(`ok ${k}\n`);
  } catch (e) {
    process.stdout.write(`err ${k} ${e.message}\n`);
  }
}
createInterface({ input: process.stdin }).on('line', (l) => { if (l.trim()) void run(JSON.parse(l), ++n); });
