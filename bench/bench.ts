// npm run bench: rundird against today's baseline (a shell loop on inotifywait doing
// mkdir/chown/chmod), on a tmpfs as /run/user is. Prints one JSON object; every latency also
// as a multiple of the harness's own floor in the same run (20 mkdirs of its own, seen through
// its own inotify watch). Needs root: the rundirs belong to many different users.
//   --trials N (default 200)  --burst N (default 1000)  --instances N (default 20)
//   --idle-seconds N (default 10)  --no-baseline  --scan-only (just the process scan)
//   --relink-only (just the relink latency)  --rescue-only (just kiosk rescue and rundirctl wait)
//   --scale (bursts of 100, 1,000 and 10,000 rundirs, logins with 10,000 live, a full resync of
//   10,000 after lost events, latency during a burst; --scale-sizes 1000,10000 picks the bursts)
//   --latency-only (just the latency of a new rundir)  --startup-only (start-up time, RSS with
//   no rundir, idle wake-ups)
// The daemon runs with the launcher's Node flags (packaging/node-flags) unless BENCH_NODE_FLAGS
// is set; BENCH_DAEMON_LOG=FILE keeps its records. BENCH_PROF=1 writes a CPU profile of the
// daemon to /tmp/prof. BENCH_TRACE=1 (with --latency-only, --relink-only or --scale) tells,
// for the slowest 2 % of trials, what the daemon's main thread ran during each (bench/tail.ts).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, openSync, statSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, watch, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { scanProcs } from '../src/sources/procs.js';
import { connect, createServer, type Server } from 'node:net';
import { get as httpGet } from 'node:http';
import { explainTail, newestProfile, TRACE_DIR, TRACE_INTERVAL_US, type Window } from './tail.js';
import { burstCFloor, burstFloor, burstLibcFloor, resyncFloor, resyncLibcFloor } from './floor.js';

const { values: opt } = parseArgs({
  options: {
    trials: { type: 'string', default: '200' },
    burst: { type: 'string', default: '1000' },
    instances: { type: 'string', default: '20' },
    'idle-seconds': { type: 'string', default: '10' },
    'no-baseline': { type: 'boolean', default: false },
    'scan-only': { type: 'boolean', default: false },
    'relink-only': { type: 'boolean', default: false },
    'rescue-only': { type: 'boolean', default: false },
    scale: { type: 'boolean', default: false },
    'latency-only': { type: 'boolean', default: false },
    'startup-only': { type: 'boolean', default: false },
    'scale-sizes': { type: 'string', default: '100,1000,10000' },
  },
});
const TRIALS = Number(opt.trials);
const BURST = Number(opt.burst);
const N_INST = Number(opt.instances);
const IDLE_S = Number(opt['idle-seconds']);
const DAEMON = resolve(import.meta.dirname, '../bundle/rundird.mjs');
const TRACE = Boolean(process.env.BENCH_TRACE);
/** Each trial's window on the monotonic clock, for BENCH_TRACE. */
const windows: (Window & { ms: number })[] = [];

if (process.geteuid?.() !== 0) {
  process.stderr.write('bench: needs root (rundirs of many users, a tmpfs to run on)\n');
  process.exit(2);
}

/**
 * The daemon's code cache, as the unit gives it one (CacheDirectory=): one for the whole run,
 * made by its first start and used by the next ones. BENCH_NO_CODE_CACHE=1 runs without it.
 */
const CODE_CACHE_DIR = process.env.BENCH_NO_CODE_CACHE ? null : mkdtempSync('/tmp/rundird-bench-cache-');
process.on('exit', () => CODE_CACHE_DIR && rmSync(CODE_CACHE_DIR, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const instances = Array.from({ length: N_INST }, (_, i) => `bench-snap${i}`);
const names = instances.map((i) => `snap.${i}`);

/** A fresh tmpfs with run/user, a staging dir on the same filesystem, and a snap root. */
function makeTree(tag: string, inodes = '200k'): { base: string; root: string; staging: string; snap: string; config: string } {
  const base = mkdtempSync(`/tmp/rundird-bench-${tag}-`);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=1g,nr_inodes=${inodes},mode=0755`, 'tmpfs', base]);
  const t = { base, root: join(base, 'run/user'), staging: join(base, 'staging'), snap: join(base, 'snap'), config: join(base, 'rundird.yaml') };
  mkdirSync(t.root, { recursive: true });
  mkdirSync(t.staging);
  for (const i of instances) {
    mkdirSync(join(t.snap, i, 'x1'), { recursive: true });
    symlinkSync('x1', join(t.snap, i, 'current'));
  }
  writeFileSync(t.config, '');
  return t;
}

function dropTree(base: string): void {
  execFileSync('umount', ['-l', base]);
  rmSync(base, { recursive: true, force: true });
}

function stageRundir(staging: string, uid: number): string {
  const p = join(staging, String(uid));
  mkdirSync(p, { mode: 0o700 });
  chownSync(p, uid, uid);
  return p;
}

/** Time from a rundir appearing (rename into the root) until all private dirs exist in it. */
async function oneLatency(t: ReturnType<typeof makeTree>, uid: number): Promise<number> {
  const staged = stageRundir(t.staging, uid);
  const seen = new Set<string>();
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  let t1 = 0n;
  const w = watch(staged, (_ev, name) => {
    if (name && names.includes(name)) seen.add(name);
    if (seen.size === names.length && t1 === 0n) {
      t1 = process.hrtime.bigint();
      done();
    }
  });
  const t0 = process.hrtime.bigint();
  renameSync(staged, join(t.root, String(uid)));
  const timeout = setTimeout(done, 10_000);
  await finished;
  clearTimeout(timeout);
  w.close();
  if (t1 === 0n) throw new Error(`uid ${uid}: private dirs did not all appear within 10 s`);
  windows.push({ t0, t1, ms: Number(t1 - t0) / 1e6 });
  return Number(t1 - t0) / 1e6;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!.toFixed(3));
}

/** Trials run first and reported apart: the first passes of a fresh process compile the code they run. */
const WARMUP = 5;

async function latency(t: ReturnType<typeof makeTree>, baseUid: number): Promise<{ p50_ms: number; p99_ms: number; max_ms: number; trials: number; warmup_ms: number[] }> {
  const warm: number[] = [];
  for (let i = 0; i < WARMUP; i++) {
    warm.push(Number((await oneLatency(t, baseUid - WARMUP + i)).toFixed(2)));
    await sleep(5);
  }
  windows.length = 0;
  const xs: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    xs.push(await oneLatency(t, baseUid + i));
    await sleep(5);
  }
  return { p50_ms: pct(xs, 50), p99_ms: pct(xs, 99), max_ms: pct(xs, 100), trials: xs.length, warmup_ms: warm };
}

/** BURST rundirs renamed in at once; time until every private dir of every one exists. */
async function burst(t: ReturnType<typeof makeTree>, baseUid: number, count = BURST): Promise<{ rundirs: number; dirs: number; seconds: number }> {
  const uids = Array.from({ length: count }, (_, i) => baseUid + i);
  for (const u of uids) stageRundir(t.staging, u);
  const t0 = process.hrtime.bigint();
  for (const u of uids) renameSync(join(t.staging, String(u)), join(t.root, String(u)));
  // Walk forward through the expected dirs, never re-checking one already seen.
  let pos = 0;
  const total = uids.length * names.length;
  const deadline = Date.now() + 600_000;
  while (pos < total) {
    const u = uids[Math.floor(pos / names.length)]!;
    if (existsSync(join(t.root, String(u), names[pos % names.length]!))) {
      pos++;
      continue;
    }
    if (Date.now() > deadline) throw new Error(`burst: ${pos}/${total} dirs after 600 s`);
    await sleep(2);
  }
  return { rundirs: count, dirs: total, seconds: Number((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3)) };
}

/**
 * The floors for a burst of `count` rundirs (bench/floor.ts) on a tmpfs of their own, each the
 * median of `runs`: Node's (the calls before libc's), libc's (the daemon's calls now, through
 * koffi) and C's (the same, where cc exists).
 */
async function floorsOfBurst(count: number, runs: number): Promise<{ node_floor_s: number; libc_floor_s: number; c_floor_s: number | null }> {
  const t = makeTree('floor', `${Math.ceil(((count * (names.length + 1) * 3) / 1000) * 1.1) + 10}k`);
  try {
    const node: number[] = [];
    const libc: number[] = [];
    const c: number[] = [];
    for (let k = 0; k < runs; k++) {
      node.push(burstFloor(t.base, count, names, 100_000 + k * count));
      libc.push(await burstLibcFloor(t.base, count, names, 100_000 + k * count));
      const x = burstCFloor(t.base, count, names, 100_000 + k * count);
      if (x !== null) c.push(x);
    }
    return { node_floor_s: pct(node, 50), libc_floor_s: pct(libc, 50), c_floor_s: c.length ? pct(c, 50) : null };
  } finally {
    dropTree(t.base);
  }
}

/** A burst's figures with its floors and the ratios to them. */
function withFloors<T extends { seconds: number }>(b: T, f: { node_floor_s: number; libc_floor_s: number; c_floor_s: number | null }) {
  return { ...b, ...f, node_floor_ratio: Number((b.seconds / f.node_floor_s).toFixed(1)), libc_floor_ratio: Number((b.seconds / f.libc_floor_s).toFixed(2)) };
}

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime
}

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number((Number(m[1]) / 1024).toFixed(1)) : NaN;
}

async function idleCpu(pid: number): Promise<{ seconds: number; cpu_seconds: number; cpu_percent: number }> {
  const hz = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  // Let the work after the burst (arming a thousand watches) finish before idling is measured.
  let last = cpuTicks(pid);
  for (let i = 0; i < 30; i++) {
    await sleep(500);
    const now = cpuTicks(pid);
    if (now === last) break;
    last = now;
  }
  const a = cpuTicks(pid);
  await sleep(IDLE_S * 1000);
  const cpu = (cpuTicks(pid) - a) / hz;
  return { seconds: IDLE_S, cpu_seconds: cpu, cpu_percent: Number(((cpu / IDLE_S) * 100).toFixed(3)) };
}

async function waitReady(t: ReturnType<typeof makeTree>): Promise<void> {
  // Ready when a probe rundir gets its dirs: both contenders are measured from a warm start.
  await oneLatency(t, 99_999);
}

async function runContender(name: string, start: (t: ReturnType<typeof makeTree>) => Promise<ChildProcess>): Promise<Record<string, unknown>> {
  const t = makeTree(name);
  const child = await start(t);
  try {
    await waitReady(t);
    const lat = await latency(t, 10_000);
    const b = await burst(t, 100_000);
    const idle = await idleCpu(child.pid!);
    return { latency: lat, burst: b, idle, peak_rss_mib: peakRssMiB(child.pid!) };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    dropTree(t.base);
  }
}

/**
 * Starts the daemon and resolves when it has said `daemon-started` (its first full pass done,
 * its API listening); `startedMs` is the time from spawn to that record. It runs with the
 * launcher's Node flags (packaging/node-flags), or BENCH_NODE_FLAGS; its records go to
 * BENCH_DAEMON_LOG=FILE if set (else a file in the tree, gone with it).
 */
async function startRundird(t: ReturnType<typeof makeTree>, extra: string[] = []): Promise<ChildProcess & { startedMs: number }> {
  const prof = TRACE ? ['--cpu-prof', `--cpu-prof-dir=${TRACE_DIR}`, `--cpu-prof-interval=${TRACE_INTERVAL_US}`] : process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : [];
  // The flags the package's launcher runs it with, unless BENCH_NODE_FLAGS says otherwise.
  const flags = (process.env.BENCH_NODE_FLAGS ?? readFileSync(resolve(import.meta.dirname, '../../packaging/node-flags'), 'utf8')).split(/\s+/).filter(Boolean);
  const t0 = process.hrtime.bigint();
  // Its records go to a file (on the bench's tmpfs), not a pipe: the bench reading them during
  // the trials would compete with the daemon for the CPU it measures.
  const logPath = process.env.BENCH_DAEMON_LOG ?? join(t.base, 'daemon.log');
  const from = existsSync(logPath) ? statSync(logPath).size : 0; // BENCH_DAEMON_LOG may hold earlier runs
  const out = openSync(logPath, 'a');
  const env = { ...process.env, CACHE_DIRECTORY: CODE_CACHE_DIR ?? '' };
  const child = spawn(process.execPath, [...flags, ...prof, DAEMON, '--config', t.config, '--runtime-root', t.root, '--snap-root', t.snap, '--api-socket', join(t.base, 'api.sock'), ...extra], { stdio: ['ignore', out, 'inherit'], env }) as ChildProcess & { startedMs: number };
  closeSync(out);
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  for (;;) {
    if (readFileSync(logPath).subarray(from).includes('"daemon-started"')) break;
    if (exited !== undefined) throw new Error(`rundird exited (${exited}) before it started`);
    await sleep(1);
  }
  child.startedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return child;
}

const BASELINE_SH = `
root="$1"; shift; instances="$*"
inotifywait -m -e create -e moved_to --format '%f' "$root" | while read -r uid; do
  case "$uid" in ''|*[!0-9]*) continue ;; esac
  for i in $instances; do
    d="$root/$uid/snap.$i"
    mkdir -p "$d" && chown "$uid:$uid" "$d" && chmod 0700 "$d"
  done
done`;

async function startBaseline(t: ReturnType<typeof makeTree>): Promise<ChildProcess> {
  const child = spawn('sh', ['-c', BASELINE_SH, 'baseline', t.root, ...instances], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  await new Promise<void>((resolveReady, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('Watches established')) resolveReady();
    });
    child.on('exit', () => reject(new Error(`baseline exited: ${err}`)));
  });
  // The whole pipeline (sh, inotifywait, the loop) is stopped as a group.
  const kill = child.kill.bind(child);
  child.kill = (sig?: NodeJS.Signals | number) => {
    try {
      process.kill(-child.pid!, sig ?? 'SIGTERM');
      return true;
    } catch {
      return kill(sig);
    }
  };
  return child;
}

/**
 * The cost of a full process scan (what a lifecycle transition or rundirctl doctor triggers):
 * fixture trees of N processes with 8 fds each on tmpfs, a tenth of them relying on a rundir,
 * and this machine's real /proc. Median of 5.
 */
async function processScan(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const median = async (f: () => Promise<unknown>) => {
    const xs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await f();
      xs.push(performance.now() - t0);
    }
    return Number(xs.sort((a, b) => a - b)[2]!.toFixed(1));
  };
  for (const n of [1000, 5000]) {
    const base = mkdtempSync('/dev/shm/rundird-bench-proc-');
    try {
      writeFileSync(join(base, 'unix'), '');
      for (let pid = 1; pid <= n; pid++) {
        const d = join(base, String(pid));
        mkdirSync(join(d, 'fd'), { recursive: true });
        mkdirSync(join(d, 'ns'));
        writeFileSync(join(d, 'status'), `Name:\tp${pid}\nUid:\t0\t0\t0\t0\n`);
        writeFileSync(join(d, 'cgroup'), `0::/system.slice/unit${pid % 100}.service\n`);
        writeFileSync(join(d, 'environ'), `PATH=/usr/bin\0HOME=/root\0${pid % 10 === 0 ? 'XDG_RUNTIME_DIR=/run/user/0\0' : ''}`);
        symlinkSync('/', join(d, 'cwd'));
        symlinkSync('net:[1]', join(d, 'ns/net'));
        for (let fd = 0; fd < 8; fd++) symlinkSync(fd < 3 ? '/dev/null' : `pipe:[${pid * 10 + fd}]`, join(d, 'fd', String(fd)));
      }
      out[`fixture_${n}_processes_ms`] = await median(() => scanProcs({ procRoot: base, runtimeRoot: '/run/user' }));
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  }
  let scanned = 0;
  out.real_proc_ms = await median(async () => (scanned = (await scanProcs({ procRoot: '/proc', runtimeRoot: '/run/user' })).scanned));
  out.real_proc_processes = scanned;
  return out;
}

/**
 * Relink latency: a server re-creates its socket (new inode) → the hard link in the snap's
 * private dir is that new inode. TRIALS trials; the link's directory is watched (inotify) and
 * the link lstat'ed on each event, so the clock stops at the rename that replaces it.
 */
async function relink(): Promise<Record<string, unknown>> {
  const t = makeTree('relink');
  const uid = 4321;
  writeFileSync(t.config, `links:\n  - name: bench\n    source: "wayland-*"\n    target: "snap.{instance}/{name}"\n    instances: [bench-snap0]\n`);
  const rd = join(t.root, String(uid));
  mkdirSync(rd, { mode: 0o700 });
  chownSync(rd, uid, uid);
  const child = await startRundird(t);
  const sock = join(rd, 'wayland-0');
  const link = join(rd, 'snap.bench-snap0', 'wayland-0');
  let server = null as Server | null;
  const listen = async () => {
    server = createServer();
    await new Promise<void>((r) => server!.listen(sock, r));
    chownSync(sock, uid, uid);
    return lstatSync(sock).ino;
  };
  const inoOf = (p: string) => lstatSync(p, { throwIfNoEntry: false })?.ino;
  try {
    let ino = await listen();
    const until = Date.now() + 30_000;
    while (inoOf(link) !== ino) {
      if (Date.now() > until) throw new Error('relink: the first link never came');
      await sleep(5);
    }
    const xs: number[] = [];
    windows.length = 0;
    for (let i = 0; i < TRIALS; i++) {
      await new Promise((r) => server!.close(r));
      if (existsSync(sock)) rmSync(sock);
      let done!: () => void;
      const seen = new Promise<void>((r) => (done = r));
      let t1 = 0n;
      let want = -1;
      const w = watch(join(rd, 'snap.bench-snap0'), () => {
        if (want !== -1 && t1 === 0n && inoOf(link) === want) {
          t1 = process.hrtime.bigint();
          done();
        }
      });
      const t0 = process.hrtime.bigint();
      ino = await listen();
      want = ino;
      if (inoOf(link) === want && t1 === 0n) {
        t1 = process.hrtime.bigint();
        done();
      }
      const to = setTimeout(done, 10_000);
      await seen;
      clearTimeout(to);
      w.close();
      if (t1 === 0n) throw new Error(`relink trial ${i}: no new link within 10 s`);
      xs.push(Number(t1 - t0) / 1e6);
      windows.push({ t0, t1, ms: Number(t1 - t0) / 1e6 });
      await sleep(5);
    }
    return { p50_ms: pct(xs, 50), p99_ms: pct(xs, 99), max_ms: pct(xs, 100), trials: xs.length, target_p99_ms: 2 };
  } finally {
    server?.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    dropTree(t.base);
  }
}

/**
 * Kiosk rescue (restore policy) and rundirctl wait, in inotify mode: (1) a root kiosk's
 * socket in a plain rundir it made; the rundir removed as logind's purge does (socket, then
 * directory) → the socket connectable at its path again; (2) a wait request to the API for a
 * socket → the server listening there → the answer. TRIALS trials each (at least 50).
 */
async function rescueBench(): Promise<Record<string, unknown>> {
  const t = makeTree('rescue');
  const trials = Math.max(50, TRIALS);
  // No private dirs here: a purge's rm -rf would race their re-making (the bench measures the socket).
  writeFileSync(t.config, 'rescue:\n  0: [restore]\nprivate-dirs:\n  uids: []\n');
  const rd = join(t.root, '0');
  mkdirSync(rd, { mode: 0o700 });
  const sock = join(rd, 'wayland-0');
  const kiosk = createServer((c) => c.end());
  await new Promise<void>((r) => kiosk.listen(sock, r));
  const child = await startRundird(t);
  const api = join(t.base, 'api.sock');
  const canConnect = (p: string) => new Promise<boolean>((r) => connect(p).once('connect', function (this: import('node:net').Socket) { this.destroy(); r(true); }).once('error', () => r(false)));
  const isSock = (p: string) => lstatSync(p, { throwIfNoEntry: false })?.isSocket() ?? false;
  try {
    const until = Date.now() + 30_000;
    while (!existsSync(join(t.root, '.rundird-rescue/0/wayland-0'))) {
      if (Date.now() > until) throw new Error('rescue: the socket was never kept');
      await sleep(20);
    }
    const purge: number[] = [];
    for (let i = 0; i < trials; i++) {
      let done!: () => void;
      const back = new Promise<void>((r) => (done = r));
      let t1 = 0n;
      const look = () => {
        if (t1 === 0n && isSock(sock)) {
          t1 = process.hrtime.bigint();
          done();
        }
      };
      const w = watch(t.root, look);
      const t0 = process.hrtime.bigint();
      rmSync(sock);
      rmSync(rd, { recursive: true });
      let wd: ReturnType<typeof watch> | null = null;
      const to = setTimeout(done, 10_000);
      // The rundir made again is watched as soon as it is there; its socket may come before.
      const poll = setInterval(() => {
        if (!wd && existsSync(rd)) {
          try {
            wd = watch(rd, look);
          } catch {
            // gone again
          }
        }
        look();
      }, 0.2);
      await back;
      clearTimeout(to);
      clearInterval(poll);
      w.close();
      (wd as ReturnType<typeof watch> | null)?.close();
      if (t1 === 0n) throw new Error(`rescue trial ${i}: the socket was not put back within 10 s`);
      if (!(await canConnect(sock))) throw new Error(`rescue trial ${i}: put back but not connectable`);
      purge.push(Number(t1 - t0) / 1e6);
      await sleep(5);
    }
    const wake: number[] = [];
    const path = join(rd, 'wayland-9');
    for (let i = 0; i < trials; i++) {
      let t0 = 0n;
      const answered = new Promise<bigint>((resolve, reject) => {
        httpGet({ socketPath: api, path: '/v1/rundirs/0/wait?socket=wayland-9&timeout=10' }, (res) => {
          res.resume();
          res.on('end', () => resolve(process.hrtime.bigint()));
        }).on('error', reject);
      });
      await sleep(20); // the wait is registered
      const srv = createServer((c) => c.end());
      t0 = process.hrtime.bigint();
      await new Promise<void>((r) => srv.listen(path, r));
      const t1 = await answered;
      wake.push(Number(t1 - t0) / 1e6);
      await new Promise((r) => srv.close(r));
      rmSync(path, { force: true });
    }
    return {
      purge_to_connectable: { p50_ms: pct(purge, 50), p99_ms: pct(purge, 99), max_ms: pct(purge, 100), trials: purge.length, target_p99_ms: 5 },
      wait_wakeup: { p50_ms: pct(wake, 50), p99_ms: pct(wake, 99), max_ms: pct(wake, 100), trials: wake.length, target_p99_ms: 5 },
    };
  } finally {
    kiosk.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    dropTree(t.base);
  }
}

/**
 * The harness's own floor: 20 mkdirs of its own, seen through its own inotify watch, on the
 * same machine in the same run. Every latency is also given as a multiple of it, so that the
 * figures compare across noisy machines.
 */
async function floor(): Promise<{ p50_ms: number; p99_ms: number }> {
  const t = makeTree('floor');
  try {
    const xs: number[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const dir = join(t.staging, `f${i}`);
      mkdirSync(dir);
      let n = 0;
      let done!: () => void;
      const all = new Promise<void>((r) => (done = r));
      let t1 = 0n;
      const w = watch(dir, () => {
        if (++n === names.length) {
          t1 = process.hrtime.bigint();
          done();
        }
      });
      const t0 = process.hrtime.bigint();
      for (const name of names) mkdirSync(join(dir, name));
      await all;
      w.close();
      xs.push(Number(t1 - t0) / 1e6);
      await sleep(2);
    }
    return { p50_ms: pct(xs, 50), p99_ms: pct(xs, 99) };
  } finally {
    dropTree(t.base);
  }
}

/**
 * Scale: bursts of 100, 1,000 and 10,000 rundirs (each on a fresh daemon: time and peak RSS);
 * on the 10,000, the safety net for lost events: the daemon stopped while one user makes
 * 20,000 files (the kernel's inotify queue overflows) and 100 private dirs are removed
 * elsewhere, then let go: the time until all 100 are back is a full resync of 10,000 live
 * rundirs. And logins measured while a burst of 1,000 goes on.
 */
async function scaleBench(f: { p50_ms: number; p99_ms: number }): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const n of opt['scale-sizes'].split(',').map(Number)) {
    const t = makeTree(`scale${n}`, '400k');
    const child = await startRundird(t);
    try {
      await waitReady(t);
      const b = await burst(t, 100_000, n);
      out[`burst_${n}`] = { ...b, per_rundir_ms: Number(((b.seconds * 1000) / n).toFixed(3)), peak_rss_mib: peakRssMiB(child.pid!) };
      if (n === 1000) {
        // Logins while another burst of 1,000 is worked through: the burst's rundirs are
        // renamed in (a few ms); once the first of them is done, 50 logins one after another;
        // how much of the burst was done after the last login is reported. Apart: one login
        // renamed in halfway through the burst's own renames, 500 of them after it: it is part
        // of the burst (the daemon cannot tell them apart) and waits about half of it.
        const uids = Array.from({ length: 1000 }, (_, i) => 300_000 + i);
        for (const u of uids) stageRundir(t.staging, u);
        const lat: number[] = [];
        let among: Promise<number> | null = null;
        for (const u of uids) {
          renameSync(join(t.staging, String(u)), join(t.root, String(u)));
          // oneLatency renames its rundir in before its first await: right here, among the burst's.
          if (u === 300_500) among = oneLatency(t, 399_999);
        }
        // The daemon has the burst in hand once the first of it is done.
        while (!existsSync(join(t.root, String(uids[0]), names.at(-1)!))) await sleep(1);
        for (let i = 0; i < 50; i++) lat.push(await oneLatency(t, 400_000 + i));
        const done = uids.filter((u) => existsSync(join(t.root, String(u), names.at(-1)!))).length;
        const amongMs = Number((await among!).toFixed(1));
        out.latency_during_burst = {
          p50_ms: pct(lat, 50),
          p99_ms: pct(lat, 99),
          trials: lat.length,
          ...(process.env.BENCH_ALL ? { all: lat.map((x) => Number(x.toFixed(1))) } : {}),
          burst_rundirs_done_after_the_last_login: `${done} of ${uids.length}`,
          login_among_the_bursts_renames_ms: amongMs,
        };
      }
      if (n === 10000) {
        // Logins with 10,000 rundirs live (each login's records are written 250 ms later).
        await sleep(1000);
        out.latency_at_10000 = await latency(t, 500_000);
        const pid = child.pid!;
        const victims = Array.from({ length: 100 }, (_, i) => 100_000 + 1 + i * 99);
        process.kill(pid, 'SIGSTOP');
        const flood = join(t.root, '100000');
        for (let i = 0; i < 20_000; i++) writeFileSync(join(flood, `f${i}`), '');
        for (const u of victims) rmSync(join(t.root, String(u), names[0]!), { recursive: true });
        const t0 = process.hrtime.bigint();
        process.kill(pid, 'SIGCONT');
        const deadline = Date.now() + 120_000;
        for (const u of victims) {
          while (!existsSync(join(t.root, String(u), names[0]!))) {
            if (Date.now() > deadline) throw new Error('resync: private dirs not back within 120 s');
            await sleep(2);
          }
        }
        windows.push({ t0, t1: process.hrtime.bigint(), ms: Number(process.hrtime.bigint() - t0) / 1e6 });
        const seconds = Number((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3));
        // The same reads with the daemon stopped (it would compete for the CPU they measure).
        await sleep(1000);
        process.kill(pid, 'SIGSTOP');
        const uids = Array.from({ length: n }, (_, i) => 100_000 + i);
        const floorS = resyncFloor(t.root, uids, names);
        const libcS = await resyncLibcFloor(t.root, uids, names);
        process.kill(pid, 'SIGCONT');
        out.resync_10000 = { seconds, target_libc_floor_ratio: 1.5, peak_rss_mib: peakRssMiB(pid), node_floor_s: floorS, node_floor_ratio: Number((seconds / floorS).toFixed(1)), libc_floor_s: libcS, libc_floor_ratio: Number((seconds / libcS).toFixed(2)) };
      }
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      dropTree(t.base);
    }
    // Node's floor for the same burst, once the daemon is gone: its tmpfs, mounted and dropped,
    // would be mount-table events for a live daemon in the middle of what is measured.
    out[`burst_${n}`] = withFloors(out[`burst_${n}`] as { seconds: number }, await floorsOfBurst(n, 1));
  }
  return out;
}

function statusField(pid: number, task: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/**
 * Start-up and idle, with no bus (--no-logind) and no rundir: the time from spawn to the
 * daemon-started record (its first full pass done, median of 15 starts, each followed by a
 * bare `node -e 0` for the ratio, from the code cache the first start made unless
 * BENCH_NO_CODE_CACHE); RSS 3 s after start and once idle (45 s),
 * beside a bare Node process that only serves HTTP on a Unix socket (the floor); and how often
 * the main thread wakes up in 30 s of idle with no client
 * (its voluntary context switches: each is one return from epoll_wait), counted from 15 s
 * after start, when V8 has done its one-time memory reduction after start-up (at ~8 s).
 */
async function startup(): Promise<Record<string, unknown>> {
  const times: number[] = [];
  let rss = NaN;
  let rssIdle = NaN;
  let anonIdle = NaN;
  let wakeups = NaN;
  let bareRss = NaN;
  let bareServer: ChildProcess | null = null;
  // With a code cache the first start makes it; memory and wake-ups are those of one that used it.
  const measured = CODE_CACHE_DIR ? 1 : 0;
  const bare: number[] = [];
  for (let i = 0; i < STARTS + measured; i++) {
    const t = makeTree('startup');
    const child = await startRundird(t, ['--no-logind']);
    try {
      times.push(child.startedMs);
      if (i === measured) {
        // Node's own floor, idle beside it: a process that only serves HTTP on a Unix socket.
        bareServer = spawn(process.execPath, ['-e', `require('node:http').createServer().listen(${JSON.stringify(join(t.base, 'bare.sock'))})`], { stdio: 'ignore' });
        await sleep(3000);
        rss = statusField(child.pid!, child.pid!, 'VmRSS') / 1024;
        await sleep(12_000);
        const w0 = statusField(child.pid!, child.pid!, 'voluntary_ctxt_switches');
        await sleep(IDLE_WAKE_S * 1000);
        wakeups = statusField(child.pid!, child.pid!, 'voluntary_ctxt_switches') - w0;
        rssIdle = statusField(child.pid!, child.pid!, 'VmRSS') / 1024;
        anonIdle = statusField(child.pid!, child.pid!, 'RssAnon') / 1024;
        bareRss = statusField(bareServer!.pid!, bareServer!.pid!, 'VmRSS') / 1024;
      }
    } finally {
      bareServer?.kill();
      bareServer = null;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      dropTree(t.base);
    }
    // Bare Node's start beside each of the daemon's, so that both see the same noise.
    const t0 = process.hrtime.bigint();
    execFileSync(process.execPath, ['-e', '0']);
    bare.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  // With a code cache, the first start of the run makes it (as after an install) and is reported apart.
  const first = CODE_CACHE_DIR ? times.shift()! : null;
  return {
    start_to_first_pass_ms: pct(times, 50),
    ...(first === null ? { code_cache: 'off' } : { code_cache: 'used', first_start_making_the_cache_ms: Number(first.toFixed(1)) }),
    bare_node_ms: pct(bare, 50),
    start_bare_node_ratio: Number((pct(times, 50) / pct(bare, 50)).toFixed(2)),
    rss_3s_after_start_mib: Number(rss.toFixed(1)),
    rss_idle_mib: Number(rssIdle.toFixed(1)),
    rss_idle_anon_mib: Number(anonIdle.toFixed(1)),
    bare_node_http_server_rss_idle_mib: Number(bareRss.toFixed(1)),
    [`main_thread_wakeups_${IDLE_WAKE_S}s_idle`]: wakeups,
    targets: { start_ms: 150, rss_mib: 50, wakeups: 0 },
  };
}
const IDLE_WAKE_S = 30;
/** Starts timed (after the one that makes the code cache): a median of 15 holds better on a noisy machine than one of 7. */
const STARTS = 15;

/** BENCH_TRACE: what the daemon ran in the slowest trials (its profile is written as it exits). */
function tail(): Record<string, unknown> {
  if (!TRACE) return {};
  const p = newestProfile();
  return { tail: p ? explainTail(p, windows) : `no profile in ${TRACE_DIR}` };
}

/**
 * Every latency (an object with p50_ms and p99_ms) also as a multiple of the harness's own
 * floor measured in the same run, so that the figures compare across noisy machines.
 */
function withFloorRatios(doc: unknown, f: { p50_ms: number; p99_ms: number }, key = ''): unknown {
  if (Array.isArray(doc)) return doc.map((d) => withFloorRatios(d, f));
  if (!doc || typeof doc !== 'object' || key === 'floor') return doc;
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) o[k] = withFloorRatios(v, f, k);
  if (typeof o.p50_ms === 'number' && typeof o.p99_ms === 'number') {
    o.p50_floor_ratio = Number((o.p50_ms / f.p50_ms).toFixed(1));
    o.p99_floor_ratio = Number((o.p99_ms / f.p99_ms).toFixed(1));
  }
  return o;
}

function print(doc: Record<string, unknown>, f: { p50_ms: number; p99_ms: number }): void {
  process.stdout.write(JSON.stringify(withFloorRatios({ floor: f, ...doc }, f), null, 2) + '\n');
}

async function main(): Promise<void> {
  if (opt['startup-only']) {
    process.stdout.write(JSON.stringify({ startup: await startup() }, null, 2) + '\n');
    return;
  }
  if (opt['scan-only']) {
    process.stdout.write(JSON.stringify({ process_scan: await processScan() }, null, 2) + '\n');
    return;
  }
  const f = await floor();
  if (opt.scale) return print({ scale: await scaleBench(f), ...tail() }, f);
  if (opt['rescue-only']) return print({ rescue: await rescueBench() }, f);
  if (opt['relink-only']) return print({ relink: await relink(), ...tail() }, f);
  if (opt['latency-only']) {
    const t = makeTree('latency');
    const child = await startRundird(t);
    let lat;
    try {
      await waitReady(t);
      windows.length = 0;
      lat = await latency(t, 10_000);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      dropTree(t.base);
    }
    return print({ latency: lat, ...tail() }, f);
  }
  const out: Record<string, unknown> = {
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version, fs: 'tmpfs' },
    scenario: { instances: N_INST, latency_trials: TRIALS, burst_rundirs: BURST, idle_seconds: IDLE_S },
    targets: { burst_libc_floor_ratio: 1.5, resync_libc_floor_ratio: 1.5, p99_floor_ratio: 3, relink_p99_floor_ratio: 3, login_during_burst_p99_ms: 10, peak_rss_10000_mib: 150, idle_wakeups: 0 },
  };
  const r = await runContender('rundird', startRundird);
  out.rundird = r;
  // Node's floor for the same burst (bench/floor.ts), the daemon gone.
  r.burst = withFloors(r.burst as { seconds: number }, await floorsOfBurst(BURST, 3));
  if (!opt['no-baseline']) {
    try {
      execFileSync('sh', ['-c', 'command -v inotifywait']);
    } catch {
      process.stderr.write('bench: no inotifywait (apt-get install inotify-tools); baseline skipped\n');
      out.baseline = null;
    }
    if (out.baseline !== null) {
      const b = await runContender('baseline', startBaseline);
      out.baseline = b;
      const rl = r.latency as { p50_ms: number; p99_ms: number };
      const bl = b.latency as { p50_ms: number; p99_ms: number };
      out.speedup = {
        latency_p50: Number((bl.p50_ms / rl.p50_ms).toFixed(1)),
        latency_p99: Number((bl.p99_ms / rl.p99_ms).toFixed(1)),
        burst: Number(((b.burst as { seconds: number }).seconds / (r.burst as { seconds: number }).seconds).toFixed(1)),
      };
    }
  }
  out.process_scan = await processScan();
  out.relink = await relink();
  out.rescue = await rescueBench();
  print(out, f);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});

