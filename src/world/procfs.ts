// Parsers for what /proc says about a process: pure functions of file contents, so that every
// odd input (kernel threads, hybrid cgroups, deleted files, paths with spaces) is unit-tested.

export interface CgroupInfo {
  /** The systemd hierarchy's path (cgroup v2 line, or name=systemd on hybrid systems). */
  path: string;
  /** The deepest .service or .scope in the path: the unit the process belongs to. */
  unit: string | null;
  /** session-N.scope under user-UID.slice: a login session of that UID. */
  session: { uid: number; id: string } | null;
  /** user@UID.service: the user manager of that UID (inside that user's sessions' life). */
  userManagerUid: number | null;
}

/** `/proc/PID/cgroup`. Null for a process with no systemd cgroup line (kernel threads). */
export function parseCgroup(text: string): CgroupInfo | null {
  let v2: string | null = null;
  let named: string | null = null;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') v2 = m[3]!;
    if (m[2] === 'name=systemd') named = m[3]!;
  }
  // On hybrid systems systemd tracks units in name=systemd and the unified line may be "/"; in a
  // container on a hybrid host it is the other way round (name=systemd "/", the unit in the
  // unified line). The hierarchy that names a unit is the one to read.
  const namesUnit = (p: string | null) => p !== null && /\.(service|scope)(\/|$)/.test(p);
  const path = namesUnit(named) ? named : namesUnit(v2) ? v2 : (named ?? v2);
  if (path === null) return null;
  const parts = path.split('/').filter(Boolean);
  let unit: string | null = null;
  for (const p of parts) if (/\.(service|scope)$/.test(p)) unit = p;
  const sm = /\/user-(\d+)\.slice\/session-([^/]+)\.scope(\/|$)/.exec(path);
  const um = /\/user-(\d+)\.slice\/user@(\d+)\.service(\/|$)/.exec(path);
  return {
    path,
    unit,
    session: sm ? { uid: Number(sm[1]), id: sm[2]! } : null,
    userManagerUid: um && um[1] === um[2] ? Number(um[1]) : null,
  };
}

/** What the process scan keeps of a process that relies on a rundir (sources/procs.ts reads it). */
export interface ProcRecord {
  pid: number;
  comm: string;
  /** Real, effective, saved, filesystem. */
  uids: number[];
  cgroup: CgroupInfo | null;
  xdgRuntimeDir: string | null;
  snapInstance: string | null;
  /** The cwd, if under the runtime root. */
  cwd: string | null;
  /** Open files under the runtime root. */
  files: { path: string; deleted: boolean }[];
  /** Bound Unix sockets it holds under the runtime root (the name outlives an unlink). */
  sockets: { path: string; listening: boolean }[];
  /** How to name it when it is not a process that could be read (observe-only: a socket whose server is unknown). */
  label?: string;
}

export interface StatusInfo {
  name: string;
  /** Real, effective, saved and filesystem UIDs. */
  uids: number[];
  /**
   * A kernel thread, or a process with no memory left (a zombie): no environment, no files,
   * nothing to read (its environ answers ESRCH). `Kthread: 1` where the kernel says it; else no
   * VmSize line.
   */
  noUserSpace: boolean;
}

/** `/proc/PID/status`: the command name and the UIDs. */
export function parseStatus(text: string): StatusInfo | null {
  const name = /^Name:\t(.*)$/m.exec(text)?.[1] ?? '';
  const u = /^Uid:\t(\d+)\t(\d+)\t(\d+)\t(\d+)$/m.exec(text);
  if (!u) return null;
  const kthread = /^Kthread:\s*(\d)/m.exec(text)?.[1];
  return { name, uids: [Number(u[1]), Number(u[2]), Number(u[3]), Number(u[4])], noUserSpace: kthread !== undefined ? kthread === '1' : !/^VmSize:/m.test(text) };
}

/** `/proc/PID/environ`: the variables asked for (NUL-separated KEY=value; the first wins). */
export function parseEnviron(buf: Buffer | string, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of buf.toString('utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const k = entry.slice(0, eq);
    if (keys.includes(k) && !(k in out)) out[k] = entry.slice(eq + 1);
  }
  return out;
}

export type FdTarget = { kind: 'socket'; inode: number } | { kind: 'path'; path: string; deleted: boolean } | { kind: 'other' };

/** A `/proc/PID/fd/N` link's target: `socket:[INODE]`, a path (maybe " (deleted)"), or anything else (pipe:, anon_inode:). */
export function parseFdTarget(target: string): FdTarget {
  const s = /^socket:\[(\d+)\]$/.exec(target);
  if (s) return { kind: 'socket', inode: Number(s[1]) };
  if (!target.startsWith('/')) return { kind: 'other' };
  if (target.endsWith(' (deleted)')) return { kind: 'path', path: target.slice(0, -' (deleted)'.length), deleted: true };
  return { kind: 'path', path: target, deleted: false };
}

/** __SO_ACCEPTCON: the socket listens. */
const SO_ACCEPTCON = 0x10000;

export interface UnixSocketEntry {
  inode: number;
  path: string;
  listening: boolean;
}

/**
 * `/proc/net/unix`: bound path sockets (abstract and unnamed ones are left out). The bound name
 * stays in the table after the file is unlinked, which is how a purged socket is still known.
 */
/**
 * `/proc/locks`: the PID holding a FLOCK on the inode `dev:ino` (major and minor in hex, as the
 * kernel prints them), or null. A line: `1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF`.
 */
export function flockHolder(text: string, major: number, minor: number, ino: number): number | null {
  const want = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${ino}`;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // "N:" FLOCK ADVISORY WRITE PID DEV:INO …; a waiting lock has "->" after the number.
    const at = f[1] === '->' ? 2 : 1;
    if (f[at] === 'FLOCK' && f[at + 4] === want && /^\d+$/.test(f[at + 3] ?? '')) return Number(f[at + 3]);
  }
  return null;
}

export function parseNetUnix(text: string): UnixSocketEntry[] {
  const out: UnixSocketEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*[0-9a-fA-F]+: [0-9a-fA-F]+ [0-9a-fA-F]+ ([0-9a-fA-F]+) [0-9a-fA-F]+ [0-9a-fA-F]+ +(\d+) (\/.*)$/.exec(line);
    if (!m) continue;
    out.push({ inode: Number(m[2]), path: m[3]!, listening: (parseInt(m[1]!, 16) & SO_ACCEPTCON) !== 0 });
  }
  return out;
}

/** The snap instance a process belongs to: snapd's environment, else a snap daemon's or app's unit name. */
export function snapInstanceOf(env: Record<string, string>, unit: string | null): string | null {
  if (env.SNAP_INSTANCE_NAME) return env.SNAP_INSTANCE_NAME;
  const m = unit ? /^snap\.([a-z0-9][a-z0-9-]*(?:_[a-z0-9]{1,10})?)\.[^.]+/.exec(unit) : null;
  return m ? m[1]! : null;
}

/** The UID whose rundir a path is in (`ROOT/UID` or below it), or null. */
export function rundirUidOf(runtimeRoot: string, path: string): number | null {
  const prefix = runtimeRoot.endsWith('/') ? runtimeRoot : runtimeRoot + '/';
  if (!path.startsWith(prefix)) return null;
  const first = path.slice(prefix.length).split('/')[0]!;
  if (!/^(0|[1-9][0-9]{0,9})$/.test(first)) return null;
  const n = Number(first);
  return n <= 0xfffffffe ? n : null;
}
