// rundirctl: asks the daemon's status API and prints for people (or --json for scripts).
// Exit codes are the interface for scripts: see CTL_EXIT.
import { lstatSync } from 'node:fs';
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import { VERSION } from '../version.js';
import { rootApiSocket } from '../api/paths.js';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EVENTS } from '../journal/events.js';
import { formatEntry, idFor, parseCatalog } from './explain.js';
import { plotSvg } from './plot.js';

export const CTL_EXIT = { HEALTHY: 0, WARNINGS: 1, USAGE: 64, UNREACHABLE: 69, BAD_ANSWER: 70, NO_PERMISSION: 77 } as const;
export const DEFAULT_API_SOCKET = '/run/rundird/api.sock';

export const CTL_USAGE = `Usage: rundirctl [--api-socket PATH] [--json] COMMAND

Commands:
  status          every rundir: state, lifecycle, linger, private dirs, warnings
  timeline UID    what happened to /run/user/UID, when (local time; --utc), and caused by what
  doctor [UID]    a fresh look at who relies on which rundir: the diagnosis and the fix
  wait UID [--socket NAME] [--timeout SECONDS]
                  returns as soon as /run/user/UID is live (and NAME in it accepts a
                  connection); exit 1 at the timeout (default 90 s), saying what it waited for;
                  a daemon not running yet is tried again until then
  rescue UID --linger
                  (root) asks logind to keep /run/user/UID for good, as the linger policy does
  plot UID        what happened to /run/user/UID as a picture (SVG on stdout: > rundir.svg)
  metrics         the daemon's metrics in Prometheus' text format (as GET /metrics on its socket)
  explain [MESSAGE_ID|EVENT]
                  what journalctl -x says of a record of rundird's (from the catalog shipped
                  with rundirctl: on Ubuntu Core, where the snap cannot install it), or the list

Options:
  --api-socket PATH  the daemon's status API (default ${DEFAULT_API_SOCKET})
  --json[=short|pretty]
                     print the daemon's JSON answer (pretty: indented, the default; short: one line)
  --timeout SECONDS  the longest the command waits: for the daemon's answer (10), or, with
                     wait, for what it waits for (90)
  --version, --help  (rundirctl COMMAND --help, rundirctl help COMMAND: one command's help)

Exit codes: 0 healthy, 1 warnings or problems found (timeline: nothing recorded),
64 bad command line, 69 daemon unreachable, 70 bad answer, 77 no permission on the socket.`;

/** "1 warning", "2 warnings". */
export const count = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** Each command's own help (rundirctl COMMAND --help, rundirctl help COMMAND). */
const COMMAND_HELP: Record<string, string> = {
  status: `Usage: rundirctl status [--json[=short|pretty]]

Every rundir: its lifecycle state, the directory's status, linger, private dirs, the services
outside login sessions that rely on it, and the warnings in force. Exit 1 when any.`,
  timeline: `Usage: rundirctl timeline UID [--utc] [--json[=short|pretty]]

What happened to /run/user/UID since rundird started, when, and caused by what (sessions,
logind jobs, mounts, states, warnings). Exit 1 when nothing was recorded.`,
  doctor: `Usage: rundirctl doctor [UID] [--json[=short|pretty]]

A fresh look at who relies on which rundir (all of them, or UID's): each warning in plain words
and its fix, and what rundird left alone and why. Exit 1 when anything needs a fix.`,
  wait: `Usage: rundirctl wait UID [--socket NAME] [--timeout SECONDS]

Returns 0 as soon as /run/user/UID is live and, with --socket, NAME in it (relative to the
rundir) is a socket that accepts a connection. Exit 1 at the timeout (90 s), saying what it was
still waiting for. A daemon not running yet is tried again until then. For ExecStartPre= of
kiosk clients, ordered After=rundird.socket (docs/kiosk.md).`,
  plot: `Usage: rundirctl plot UID [--utc] > rundir.svg

What happened to /run/user/UID since rundird started, as a picture (as systemd-analyze plot
draws a boot): its lifecycle states over time as bands, and every event of its timeline as a
mark with its name (warnings red, rescue steps blue, logind and systemd grey). SVG on stdout.`,
  metrics: `Usage: rundirctl metrics

The daemon's metrics in Prometheus' text format, as GET /metrics on the API socket answers them
(and as node_exporter's textfile collector reads them from metrics-textfile: DIR). docs/fleet.md.`,
  explain: `Usage: rundirctl explain [MESSAGE_ID|EVENT]

What journalctl -x says of a record of rundird's, found by its MESSAGE_ID or its event name
(RUNDIRD_EVENT, such as reliant-without-linger), from the catalog shipped with rundirctl; @FIELD@
stands for the record's field. Without an argument, every event with its MESSAGE_ID. Needs no
daemon. For Ubuntu Core, where a snap cannot install the catalog for journalctl.`,
  rescue: `Usage: rundirctl rescue UID --linger

(root) Asks logind to keep /run/user/UID for good (linger), as the linger rescue policy does.`,
};

/** A usage error: one line, and where to read more. */
const usage = (msg: string, cmd?: string) => new CtlError(CTL_EXIT.USAGE, `${msg}\nTry 'rundirctl ${cmd && COMMAND_HELP[cmd] ? `${cmd} ` : ''}--help'.`);

export class CtlError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_ANSWER = 8 * 1024 * 1024;

export function get(socketPath: string, path: string, timeoutMs: number, method = 'GET', raw = false): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER) {
          req.destroy();
          reject(new CtlError(CTL_EXIT.BAD_ANSWER, `the daemon's answer is larger than ${MAX_ANSWER} bytes`));
        } else chunks.push(c);
      });
      res.on('end', () => {
        if (raw) return resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        } catch {
          reject(new CtlError(CTL_EXIT.BAD_ANSWER, `the daemon at ${socketPath} answered something that is not JSON`));
        }
      });
    });
    req.on('timeout', () => {
      req.destroy();
      reject(new CtlError(CTL_EXIT.UNREACHABLE, `no answer from ${socketPath} within ${timeoutMs / 1000} s`));
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e instanceof CtlError) return reject(e);
      if (e.code === 'EACCES' || e.code === 'EPERM') reject(new CtlError(CTL_EXIT.NO_PERMISSION, `${socketPath}: permission denied (the API is for root and the configured api-group)`));
      else reject(Object.assign(new CtlError(CTL_EXIT.UNREACHABLE, `cannot reach rundird at ${socketPath}: ${e.code ?? e.message} (is rundird running? systemctl status rundird)`), { notThere: e.code === 'ENOENT' || e.code === 'ECONNREFUSED' }));
    });
    req.end();
  });
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Colour for a cell after padding (ANSI codes must not count in the widths); identity when off. */
type Paint = (row: number, col: number, text: string) => string;

function table(rows: string[][], paint: Paint = (_r, _c, t) => t): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r, ri) => r.map((c, i) => paint(ri, i, i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** Colour as loginctl and systemctl use it: on a terminal, unless NO_COLOR is set. */
export const useColor = (): boolean => process.stdout.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
const SGR = { green: '\x1b[32m', yellow: '\x1b[33m', red: '\x1b[31m', dim: '\x1b[90m', bold: '\x1b[1m' } as const;
const paintWith = (on: boolean) => (code: keyof typeof SGR, t: string) => (on ? `${SGR[code]}${t}\x1b[0m` : t);
const LIFECYCLE_COLOUR: Record<string, keyof typeof SGR> = { live: 'green', starting: 'yellow', closing: 'yellow', stopping: 'red', absent: 'dim' };

const yesNo = (b: boolean | null) => (b === null ? '-' : b ? 'yes' : 'no');

export function formatStatus(s: Obj, color = false): string {
  const c = paintWith(color);
  const rows = [['UID', 'PATH', 'LIFECYCLE', 'DIRECTORY', 'LINGER', 'PRIVATE-DIRS', 'LINKS', 'RELIANT', 'WARNINGS']];
  for (const r of s.rundirs as Obj[]) rows.push([String(r.uid), r.path, r.lifecycle, r.status, yesNo(r.linger), String(r.privateDirs.length), String(r.links.length + (r.linksLeftOut ?? 0)), String(r.reliants), String(r.warnings)]);
  const out = [`rundird ${s.version} (pid ${s.pid}), ${s.summary}`, ''];
  // A source that fails now, and what rundird does meanwhile.
  for (const g of (s.degraded ?? []) as Obj[]) out.splice(1, 0, c('red', `! ${g.source} degraded since ${g.since}: ${g.cause}; ${g.meanwhile}`));
  const paint: Paint = (ri, col, t) => {
    if (ri === 0) return c('bold', t);
    const r = (s.rundirs as Obj[])[ri - 1]!;
    if (col === 2) return LIFECYCLE_COLOUR[r.lifecycle] ? c(LIFECYCLE_COLOUR[r.lifecycle]!, t) : t;
    if (col === 3 && !['plain', 'tmpfs', 'mounted', 'absent'].includes(r.status)) return c('red', t);
    if (col === 8 && r.warnings > 0) return c('red', t);
    if (col === 7 && r.reliants > 0) return c('yellow', t);
    return t;
  };
  out.push(s.rundirs.length ? table(rows, paint) : `no rundirs under ${s.runtimeRoot}`);
  if (s.rundirsLeftOut) out.push(`… and ${count(s.rundirsLeftOut, 'more rundir', 'more rundirs')} not listed (rundirctl doctor UID asks for one)`);
  const w = (s.warnings as Obj[]).length;
  const problems = (s.rundirs as Obj[]).reduce((n, r) => n + r.problems.length + (r.problemsLeftOut ?? 0), 0);
  out.push('', w || problems ? c('red', `${count(w, 'warning')}, ${count(problems, 'problem')}: run rundirctl doctor`) : c('green', 'no warnings'));
  return out.join('\n');
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** A time as journalctl shows it: local by default, UTC with --utc (and said so). */
export function stamp(iso: string, utc = false): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const [y, mo, da, h, mi, s, ms] = utc
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds()];
  return `${y}-${pad(mo)}-${pad(da)} ${pad(h)}:${pad(mi)}:${pad(s)}.${pad(ms, 3)}${utc ? ' UTC' : ''}`;
}

export function formatTimeline(t: Obj, utc = false): string {
  const rows = [['TIME', 'EVENT', 'DETAIL']];
  for (const e of t.timeline as Obj[]) rows.push([stamp(e.at, utc), e.event, e.detail]);
  return `${t.path}\n\n${table(rows)}`;
}

const indent = (text: string, pad: string) => text.split('\n').map((l) => pad + l).join('\n');

/** What doctor lists of the problems rundird left alone: this many rundirs, this many problems each. */
const DOCTOR_PROBLEM_RUNDIRS = 20;
const DOCTOR_PROBLEMS = 5;

export function formatDoctor(d: Obj, color = false): string {
  const c = paintWith(color);
  const out: string[] = [];
  const scope = d.uid === null ? 'all rundirs' : `UID ${d.uid}`;
  for (const w of d.warnings as Obj[]) {
    out.push(c('red', `✗ ${w.subject}: ${w.event}`));
    out.push(indent(w.message, '    '));
    out.push('  What to do:');
    out.push(indent(w.remedy, '    '));
    out.push(`  (journalctl -x MESSAGE_ID=${w.messageId} explains this kind of warning)`, '');
  }
  const outside = (d.reliants as Obj[]).filter((r) => !r.inSession);
  const inside = (d.reliants as Obj[]).filter((r) => r.inSession);
  if (d.warnings.length === 0) {
    out.push(c('green', `✓ ${scope}: no problems found (${d.mode} mode).`));
    const list = outside.map((r: Obj) => `${r.label} → UID ${r.uid}`).join(', ');
    if (outside.length && d.mode === 'logind') out.push(`  ${count(outside.length, 'service')} outside login sessions ${outside.length === 1 ? 'relies' : 'rely'} on a rundir that logind keeps for them (linger): ${list}`);
    else if (outside.length) out.push(`  ${count(outside.length, 'service')} outside login sessions ${outside.length === 1 ? 'relies' : 'rely'} on a rundir: ${list}. Without logind rundird cannot tell whether it will be kept.`);
  }
  if (inside.length) out.push(`  ${inside.length} units inside login sessions use their own rundir (fine).`);
  // What rundird saw and left alone (a rundir it will not enter, a private dir of another
  // owner): not a warning about reliance, but why a snap may find no private dir.
  const odd = (d.rundirs as Obj[]).filter((r) => r.problems?.length);
  for (const r of odd.slice(0, DOCTOR_PROBLEM_RUNDIRS)) {
    out.push(c('yellow', `! UID ${r.uid}: left alone in ${r.path}:`));
    for (const p of (r.problems as Obj[]).slice(0, DOCTOR_PROBLEMS)) out.push(`    ${p.code}: ${p.detail}`);
    const more = r.problems.length - DOCTOR_PROBLEMS + (r.problemsLeftOut ?? 0);
    if (more > 0) out.push(`    … and ${more} more (rundirctl status --json)`);
  }
  if (odd.length > DOCTOR_PROBLEM_RUNDIRS) out.push(`  … and ${count(odd.length - DOCTOR_PROBLEM_RUNDIRS, 'more rundir', 'more rundirs')} with things left alone (rundirctl status).`);
  for (const r of (d.rundirs as Obj[]).filter((x) => x.rescue?.length)) out.push(`  Kiosk rescue for UID ${r.uid}: ${r.rescue.join(', ')} (what it did: rundirctl timeline ${r.uid}).`);
  if (d.lastScan) {
    const other = d.lastScan.otherWorld ? `; ${d.lastScan.otherWorld} left out as another container's (their mount namespace has another runtime root)` : '';
    out.push(`  Looked at ${d.lastScan.scanned} processes in ${d.lastScan.ms} ms${d.lastScan.unreadable ? `; ${d.lastScan.unreadable} could not be read` : ''}${other}.`);
  }
  return out.join('\n');
}

export interface CtlResult {
  code: number;
  out: string;
}

/** Root asks on root's own socket when the daemon has one (api-group members cannot crowd it). */
function pickSocket(path: string): string {
  if (process.geteuid?.() !== 0) return path;
  const own = rootApiSocket(path);
  try {
    if (lstatSync(own).isSocket()) return own;
  } catch {
    // none: the daemon has no api-group
  }
  return path;
}

/**
 * The catalog shipped with the program: beside the bundle in a clone or the package
 * (../../systemd/rundird.catalog), or journald's copy where the package installed it.
 */
function readCatalog(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const places = [join(here, '../../systemd/rundird.catalog'), join(here, '../../../systemd/rundird.catalog'), '/usr/lib/systemd/catalog/rundird.catalog'];
  for (const p of places) {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      // the next place
    }
  }
  throw new CtlError(CTL_EXIT.BAD_ANSWER, `explain: the catalog is not at ${places.join(', ')}`);
}

export async function runCtl(argv: string[]): Promise<CtlResult> {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      // --json takes an optional value as systemd's tools do (--json=short, --json=pretty): only
      // after '=', so that `--json status` stays a flag and a command.
      args: argv.flatMap((a) => (a.startsWith('--json=') ? ['--json', `--json-format=${a.slice(7)}`] : [a])),
      allowPositionals: true,
      options: { 'api-socket': { type: 'string' }, utc: { type: 'boolean' }, json: { type: 'boolean' }, 'json-format': { type: 'string' }, timeout: { type: 'string' }, socket: { type: 'string' }, linger: { type: 'boolean' }, version: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (e) {
    const m = (e as Error).message.split('\n')[0]!;
    if (/'-o'/.test(m)) throw usage(`-o is not an option of rundirctl; for JSON say --json (or --json=short, --json=pretty)`);
    throw usage(m.replace(/\. To specify a positional argument.*$/, ''));
  }
  const cmd0 = positionals[0];
  if (values.help || cmd0 === 'help') {
    const which = cmd0 === 'help' ? positionals[1] : cmd0;
    if (which !== undefined && cmd0 === 'help' && !COMMAND_HELP[which]) throw usage(`help: no command "${which}"`);
    return { code: 0, out: (which && COMMAND_HELP[which]) || CTL_USAGE };
  }
  if (values.version || positionals[0] === 'version') return { code: 0, out: `rundirctl ${VERSION}` };
  const format = values['json-format'];
  if (format !== undefined && format !== 'short' && format !== 'pretty') throw usage(`--json: expected short or pretty, got "${format}"`);
  const jsonMode = values.json ? (format ?? 'pretty') : null;
  const sock = pickSocket(values['api-socket'] ?? DEFAULT_API_SOCKET);
  const timeout = values.timeout === undefined ? (positionals[0] === 'wait' ? 90 : 10) : Number(values.timeout);
  if (!(timeout > 0)) throw usage(`--timeout: expected seconds, got "${values.timeout}"`, positionals[0]);
  const [cmd, arg, ...rest] = positionals;
  const uidArg = (required: boolean): string | null => {
    if (arg === undefined) {
      if (required) throw usage(`${cmd}: which UID?`, cmd);
      return null;
    }
    if (!/^(0|[1-9][0-9]{0,9})$/.test(arg)) throw usage(`${cmd}: "${arg}" is not a UID`, cmd);
    return arg;
  };
  if (rest.length) throw usage(`unexpected arguments: ${rest.join(' ')}`, cmd);
  const ask = async (path: string, okStatuses = [200]) => {
    const r = await get(sock, path, timeout * 1000);
    if (!okStatuses.includes(r.status)) throw new CtlError(CTL_EXIT.BAD_ANSWER, `rundird answered ${r.status}: ${(r.body as Obj)?.error ?? ''}`);
    return r;
  };
  const json = (b: unknown) => (jsonMode === 'short' ? JSON.stringify(b) : JSON.stringify(b, null, 2));
  switch (cmd) {
    case 'status': {
      const { body } = await ask('/v1/status');
      const s = body as Obj;
      const bad = s.warnings.length > 0 || s.rundirs.some((r: Obj) => r.problems.length > 0) || (s.degraded?.length ?? 0) > 0;
      return { code: bad ? CTL_EXIT.WARNINGS : CTL_EXIT.HEALTHY, out: values.json ? json(s) : formatStatus(s, useColor()) };
    }
    case 'timeline': {
      const uid = uidArg(true)!;
      const r = await ask(`/v1/rundirs/${uid}/timeline`, [200, 404]);
      if (r.status === 404) return { code: CTL_EXIT.WARNINGS, out: values.json ? json({ uid: Number(uid), timeline: [] }) : `nothing recorded for UID ${uid} since rundird started` };
      return { code: CTL_EXIT.HEALTHY, out: values.json ? json(r.body) : formatTimeline(r.body as Obj, values.utc === true) };
    }
    case 'doctor': {
      const uid = uidArg(false);
      const { body } = await ask(`/v1/doctor${uid === null ? '' : `?uid=${uid}`}`);
      const d = body as Obj;
      return { code: d.healthy ? CTL_EXIT.HEALTHY : CTL_EXIT.WARNINGS, out: values.json ? json(d) : formatDoctor(d, useColor()) };
    }
    case 'wait': {
      const uid = uidArg(true)!;
      const q = new URLSearchParams({ timeout: String(timeout) });
      if (values.socket !== undefined) q.set('socket', values.socket);
      // The daemon answers when it is so (or at the timeout); a little longer for the answer itself.
      // A daemon not there yet (at boot, a kiosk may start first) is tried again until the
      // timeout: the wait is for the daemon too.
      const deadline = Date.now() + timeout * 1000;
      let r: { status: number; body: unknown };
      for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
        try {
          const left = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
          q.set('timeout', String(left));
          r = await get(sock, `/v1/rundirs/${uid}/wait?${q}`, left * 1000 + 5000);
          break;
        } catch (e) {
          if (!(e as { notThere?: boolean }).notThere || Date.now() + pause >= deadline) throw e;
          await new Promise((res) => setTimeout(res, pause));
        }
      }
      if (r.status !== 200) throw new CtlError(r.status === 400 ? CTL_EXIT.USAGE : CTL_EXIT.BAD_ANSWER, `rundird answered ${r.status}: ${(r.body as Obj)?.error ?? ''}`);
      const b = r.body as Obj;
      if (values.json) return { code: b.ready ? CTL_EXIT.HEALTHY : CTL_EXIT.WARNINGS, out: json(b) };
      return b.ready ? { code: CTL_EXIT.HEALTHY, out: '' } : { code: CTL_EXIT.WARNINGS, out: `timed out after ${timeout} s, still waiting for ${b.waitingFor}` };
    }
    case 'rescue': {
      const uid = uidArg(true)!;
      if (!values.linger) throw usage('rescue: say what to do (--linger)', 'rescue');
      const r = await get(sock, `/v1/rundirs/${uid}/linger`, timeout * 1000, 'POST');
      if (r.status === 403) throw new CtlError(CTL_EXIT.NO_PERMISSION, `rescue: ${(r.body as Obj)?.error ?? 'refused'}`);
      if (r.status !== 200) throw new CtlError(CTL_EXIT.BAD_ANSWER, `rundird answered ${r.status}: ${(r.body as Obj)?.error ?? ''}`);
      return { code: CTL_EXIT.HEALTHY, out: values.json ? json(r.body) : `logind keeps /run/user/${uid} for good now (linger)` };
    }
    case 'plot': {
      const uid = uidArg(true)!;
      const r = await ask(`/v1/rundirs/${uid}/timeline`, [200, 404]);
      const t = r.status === 404 ? { uid: Number(uid), path: `/run/user/${uid}`, timeline: [] } : (r.body as Obj);
      return { code: r.status === 404 ? CTL_EXIT.WARNINGS : CTL_EXIT.HEALTHY, out: plotSvg(t as Parameters<typeof plotSvg>[0], new Date(), (iso) => stamp(iso, values.utc === true)).trimEnd() };
    }
    case 'metrics': {
      const r = await get(sock, '/metrics', timeout * 1000, 'GET', true);
      if (r.status !== 200) throw new CtlError(CTL_EXIT.BAD_ANSWER, `rundird answered ${r.status}`);
      return { code: CTL_EXIT.HEALTHY, out: String(r.body).trimEnd() };
    }
    case 'explain': {
      const catalog = parseCatalog(readCatalog());
      if (arg === undefined) {
        const rows = Object.entries(EVENTS).map(([name, def]) => `${def.id}  ${name}  ${catalog.get(def.id)?.subject ?? def.summary}`);
        return { code: CTL_EXIT.HEALTHY, out: rows.join('\n') };
      }
      const id = idFor(arg);
      const entry = id === null ? undefined : catalog.get(id);
      if (!entry) throw new CtlError(CTL_EXIT.WARNINGS, `explain: no entry for "${arg}" (rundirctl explain lists them)`);
      return { code: CTL_EXIT.HEALTHY, out: values.json ? json(entry) : formatEntry(entry) };
    }
    case undefined:
      throw usage('which command? status, timeline, doctor, wait, rescue, plot, metrics or explain');
    default:
      throw usage(`unknown command "${cmd}"`);
  }
}
