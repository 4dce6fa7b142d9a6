// Reads /proc (or a fixture tree standing in for it) for the processes that rely on a rundir:
// XDG_RUNTIME_DIR, cwd, open files and bound Unix sockets under the runtime root. Only those are
// kept, so memory follows the reliant processes, not the process count. Runs on demand only.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parseMountInfo, placeOf, topMounts } from '../world/mountinfo.js';
import { parseCgroup, parseEnviron, parseFdTarget, parseNetUnix, parseStatus, rundirUidOf, snapInstanceOf, type ProcRecord } from '../world/procfs.js';

export type { ProcRecord } from '../world/procfs.js';

export interface ScanResult {
  procs: ProcRecord[];
  /** Processes looked at. */
  scanned: number;
  /** Processes whose environment or fds could not be read (permissions, gone meanwhile). */
  unreadable: number;
  /**
   * Processes of another world (a container): their mount namespace sees another directory at
   * the runtime root, so their XDG_RUNTIME_DIR, files and sockets name paths of theirs, not the
   * host's. Left out of everything, counted here.
   */
  otherWorld: number;
  ms: number;
}

export interface ScanOptions {
  procRoot: string;
  runtimeRoot: string;
  /** Only these PIDs (a unit's processes); all of them when absent. */
  pids?: number[];
  /** Left out (the daemon itself). */
  skipPid?: number;
  /** fds read per process at most: a process with 100k fds must not stall the daemon. */
  maxFds?: number;
  /**
   * Where the runtime root lives as rundird's own mount table says (mountinfo.ts placeOf): a
   * process whose mount namespace places it elsewhere is another world's. Absent: not compared.
   */
  runtimeRootPlace?: string | null;
}

/** The scan yields to the event loop after this much work: synchronous reads of /proc are ~10×
 * cheaper than the thread pool's round trips, and a pass (a login's private dirs) then waits
 * behind a scan for at most this long. A fixed count of processes per turn (16, before) took
 * 1–4 ms a turn and was the largest part of the latency tail (bench/tail.ts). */
const SLICE_MS = 0.5;
const ENV_KEYS = ['XDG_RUNTIME_DIR', 'SNAP_INSTANCE_NAME'] as const;

interface Raw {
  pid: number;
  rec: ProcRecord;
  socketInodes: number[];
  netns: string;
  relevant: boolean;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function link(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

/**
 * The scan's time slices: `due()` says the current one is spent, `pause()` yields and starts the
 * next. `quiet(fn)` runs synchronous reads without stack traces (most reads of other processes
 * fail, EACCES or gone meanwhile, and a failed read then costs a tenth as much); never across
 * a pause, when others run.
 */
interface Slicer {
  due(): boolean;
  pause(): Promise<void>;
  quiet<T>(fn: () => T): T;
}

/** fd links read between two looks at the clock. */
const FDS_PER_CHECK = 32;

/**
 * Whether a process sees the runtime root rundird sees. Its mount namespace first (the same
 * as one already judged: the same answer); then the place of the runtime root in its own mount
 * table (/proc/PID/mountinfo: text from the kernel, no filesystem of the container is entered).
 * Where either cannot be read, it is taken as the host's, as before.
 */
function sameWorld(o: ScanOptions, dir: string, worlds: Map<string, boolean>): boolean {
  if (!o.runtimeRootPlace) return true;
  const ns = link(join(dir, 'ns', 'mnt'));
  if (ns === null) return true;
  const known = worlds.get(ns);
  if (known !== undefined) return known;
  const text = readText(join(dir, 'mountinfo'));
  const same = text === null ? true : placeOf(topMounts(parseMountInfo(text)), o.runtimeRoot) === o.runtimeRootPlace;
  worlds.set(ns, same);
  return same;
}

async function readOne(o: ScanOptions, pid: number, slices: Slicer, worlds: Map<string, boolean>): Promise<{ raw: Raw | null; unreadable: boolean; otherWorld?: boolean }> {
  const dir = join(o.procRoot, String(pid));
  if (!slices.quiet(() => sameWorld(o, dir, worlds))) return { raw: null, unreadable: false, otherWorld: true };
  const first = slices.quiet(() => readHead(o, dir, pid));
  if (first === null) return { raw: null, unreadable: false }; // gone, or not a process
  const { rec, fds, under } = first;
  const unreadable = first.unreadable;
  const socketInodes: number[] = [];
  const limit = Math.min(fds.length, o.maxFds ?? 4096);
  for (let k = 0; k < limit; k += FDS_PER_CHECK) {
    // A process with hundreds of fds (systemd, a browser) takes milliseconds to read: the scan
    // yields inside it too, so that a login's pass never waits behind one process.
    if (k > 0 && slices.due()) await slices.pause();
    slices.quiet(() => {
      for (const fd of fds.slice(k, Math.min(limit, k + FDS_PER_CHECK))) {
        const t = link(join(dir, 'fd', fd));
        if (t === null) continue;
        const f = parseFdTarget(t);
        if (f.kind === 'socket') socketInodes.push(f.inode);
        else if (f.kind === 'path' && under(f.path)) rec.files.push({ path: f.path, deleted: f.deleted });
      }
    });
  }
  const netns = slices.quiet(() => link(join(dir, 'ns', 'net'))) ?? '';
  const relevant = (rec.xdgRuntimeDir !== null && under(rec.xdgRuntimeDir)) || rec.cwd !== null || rec.files.length > 0;
  return { raw: { pid, rec, socketInodes, netns, relevant }, unreadable };
}

/** What a process is (status, cgroup, environment, cwd) and the names of its fds; null when it is none. */
function readHead(o: ScanOptions, dir: string, pid: number): { rec: ProcRecord; fds: string[]; under: (p: string) => boolean; unreadable: boolean } | null {
  const status = readText(join(dir, 'status'));
  const st = status === null ? null : parseStatus(status);
  // Gone, not a process, or nothing of user space to read (a kernel thread): none of these
  // relies on a rundir, and none is "could not be read".
  if (!st || st.noUserSpace) return null;
  const cgroupText = readText(join(dir, 'cgroup'));
  const cgroup = cgroupText === null ? null : parseCgroup(cgroupText);
  let env: Record<string, string> = {};
  let unreadable = false;
  try {
    env = parseEnviron(readFileSync(join(dir, 'environ')), ENV_KEYS);
  } catch {
    unreadable = true;
  }
  const root = o.runtimeRoot;
  const under = (p: string) => rundirUidOf(root, p) !== null;
  const cwdLink = link(join(dir, 'cwd'));
  const rec: ProcRecord = {
    pid,
    comm: st.name,
    uids: st.uids,
    cgroup,
    xdgRuntimeDir: env.XDG_RUNTIME_DIR && env.XDG_RUNTIME_DIR.startsWith('/') ? env.XDG_RUNTIME_DIR.replace(/\/+$/, '') : null,
    snapInstance: snapInstanceOf(env, cgroup?.unit ?? null),
    cwd: cwdLink && under(cwdLink) ? cwdLink : null,
    files: [],
    sockets: [],
  };
  let fds: string[] = [];
  try {
    fds = readdirSync(join(dir, 'fd'));
  } catch {
    unreadable = true;
  }
  return { rec, fds, under, unreadable };
}

/** Lists the numeric entries of the proc root. */
function allPids(procRoot: string): number[] {
  const names = readdirSync(procRoot);
  return names.filter((n) => /^[1-9][0-9]*$/.test(n)).map(Number);
}

/** Processes of one namespace tried for its socket table: enough for a few that exited, never a walk over thousands. */
const TABLE_TRIES = 64;

/**
 * A network namespace's socket table, through a process of it that is still there. The first
 * one read may have exited since (a login's short-lived helpers do): its table was then none,
 * and every socket of the namespace went unseen for a whole scan, a kiosk's among them (its
 * rescue link dropped as if its server had gone). The namespace is read again after the table:
 * a PID reused meanwhile, in another namespace, is not taken for it.
 */
function readSocketTable(procRoot: string, netns: string, pids: readonly number[]): string | null {
  for (const pid of pids.slice(0, TABLE_TRIES)) {
    const text = readText(join(procRoot, String(pid), 'net', 'unix'));
    if (text !== null && (link(join(procRoot, String(pid), 'ns', 'net')) ?? '') === netns) return text;
  }
  return null;
}

export async function scanProcs(o: ScanOptions): Promise<ScanResult> {
  const t0 = performance.now();
  const pids = (o.pids ?? allPids(o.procRoot)).filter((p) => p !== o.skipPid);
  const raws: Raw[] = [];
  let unreadable = 0;
  let otherWorld = 0;
  // Mount namespace → whether it sees rundird's runtime root: each judged once a scan.
  const worlds = new Map<string, boolean>();
  let slice = performance.now();
  const slices: Slicer = {
    due: () => performance.now() - slice >= SLICE_MS,
    pause: async () => {
      await new Promise((r) => setImmediate(r));
      slice = performance.now();
    },
    quiet: (fn) => {
      const traces = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      try {
        return fn();
      } finally {
        Error.stackTraceLimit = traces;
      }
    },
  };
  for (let i = 0; i < pids.length; i++) {
    if (i > 0 && slices.due()) await slices.pause();
    const g = await readOne(o, pids[i]!, slices, worlds);
    if (g.unreadable) unreadable++;
    if (g.otherWorld) otherWorld++;
    if (g.raw) raws.push(g.raw);
  }
  // Socket tables are per network namespace: one read for each namespace that holds sockets.
  const members = new Map<string, number[]>();
  for (const r of raws) {
    if (r.socketInodes.length === 0) continue;
    const l = members.get(r.netns);
    if (l) l.push(r.pid);
    else members.set(r.netns, [r.pid]);
  }
  const tables = new Map<string, Map<number, { path: string; listening: boolean }>>();
  for (const [netns, pids] of members) {
    const text = readSocketTable(o.procRoot, netns, pids) ?? readText(join(o.procRoot, 'net', 'unix')) ?? '';
    const m = new Map<number, { path: string; listening: boolean }>();
    for (const e of parseNetUnix(text)) if (rundirUidOf(o.runtimeRoot, e.path) !== null) m.set(e.inode, { path: e.path, listening: e.listening });
    tables.set(netns, m);
  }
  const procs: ProcRecord[] = [];
  for (const r of raws) {
    const table = tables.get(r.netns);
    if (table) for (const ino of r.socketInodes) {
      const s = table.get(ino);
      if (s) r.rec.sockets.push(s);
    }
    if (r.relevant || r.rec.sockets.length > 0) procs.push(r.rec);
  }
  return { procs, scanned: pids.length, unreadable, otherWorld, ms: performance.now() - t0 };
}
