// The API's documents, built from what the daemon believes now. Plain JSON; rundirctl and
// scripts read the same shapes (docs/api.md).
import type { Daemon } from '../daemon/daemon.js';
import { EVENTS } from '../journal/events.js';
import type { Warning } from '../reconcile/diagnose.js';
import { VERSION } from '../version.js';
import { HttpError, type ApiHandlers, RawAnswer } from './server.js';

const MAX_LIST = 1000;
/** Links listed per rundir: a user decides how many sources there are. */
export const MAX_LINKS = 256;

/** A list cut at `max`, and how many were left out (0 when none). */
function capped<T>(xs: readonly T[], max: number): { list: T[]; leftOut: number } {
  return { list: xs.slice(0, max), leftOut: Math.max(0, xs.length - max) };
}

export function warningDoc(w: Warning) {
  return { event: w.event, messageId: EVENTS[w.event].id, priority: EVENTS[w.event].priority, uid: w.uid, path: w.path, unit: w.unit, subject: w.subject, pid: w.pid, instance: w.instance, message: w.message, remedy: w.remedy, fields: w.fields };
}

function rundirs(d: Daemon, only: number | null) {
  // Indexed once: at 10,000 rundirs a lookup per rundir in each list was quadratic.
  const st = new Map(d.state().map((s) => [s.uid, s]));
  const warnings = new Map<number, number>();
  for (const w of d.diag.current()) warnings.set(w.uid, (warnings.get(w.uid) ?? 0) + 1);
  const reliants = new Map<number, number>();
  for (const r of d.diag.reliants()) if (!r.inSession) reliants.set(r.uid, (reliants.get(r.uid) ?? 0) + 1);
  const uids = [...new Set([...st.keys(), ...warnings.keys()])].filter((u) => only === null || u === only).sort((a, b) => a - b);
  const { list, leftOut } = capped(uids, MAX_LIST);
  return {
    leftOut,
    rundirs: list.map((uid) => {
      const s = st.get(uid);
      const links = capped(d.links(uid), MAX_LINKS);
      return {
        uid,
        path: s?.path ?? `${d.config.runtimeRoot}/${uid}`,
        status: s?.status ?? 'absent',
        lifecycle: s?.lifecycle ?? 'absent',
        linger: d.linger(uid),
        privateDirs: s?.privateDirs ?? [],
        problems: s?.problems ?? [],
        problemsLeftOut: s?.problemsLeftOut ?? 0,
        warnings: warnings.get(uid) ?? 0,
        reliants: reliants.get(uid) ?? 0,
        links: links.list,
        linksLeftOut: links.leftOut,
        rescue: [...(d.config.rescue.get(uid) ?? [])],
      };
    }),
  };
}

export function handlersFor(d: Daemon): ApiHandlers {
  return {
    status: () => {
      const r = rundirs(d, null);
      const w = capped(d.diag.current(), MAX_LIST);
      return {
        version: VERSION,
        pid: process.pid,
        mode: d.mode,
        summary: d.summary(),
        runtimeRoot: d.config.runtimeRoot,
        rundirs: r.rundirs,
        rundirsLeftOut: r.leftOut,
        instances: d.instances(),
        warnings: w.list.map(warningDoc),
        warningsLeftOut: w.leftOut,
        lastScan: d.diag.lastScan,
        degraded: [...d.degraded].map(([source, v]) => ({ source, ...v })),
      };
    },
    metrics: async () => new RawAnswer(d.metrics.contentType, await d.metrics.text()),
    wait: async (uid, socket, timeoutMs, signal) => {
      // The rundir's sync arms watches on the socket's directories, and looks.
      const p = d.waiters.wait(uid, socket, timeoutMs, signal);
      if (p === null) throw new HttpError(503, 'too many waits at once; try again');
      d.kick(uid);
      return { uid, socket, ...(await p) };
    },
    linger: async (uid) => {
      const r = await d.lingerFor(uid, 'rundirctl rescue', 'rundirctl');
      if (!r.ok) throw new HttpError(502, `logind refused: ${r.error}`);
      return { uid, linger: true };
    },
    timeline: (uid) => {
      const t = d.timeline(uid);
      return t.length === 0 ? null : { uid, path: `${d.config.runtimeRoot}/${uid}`, timeline: t };
    },
    warnings: () => {
      const w = capped(d.diag.current(), MAX_LIST);
      return { warnings: w.list.map(warningDoc), warningsLeftOut: w.leftOut };
    },
    reliants: () => {
      const r = capped(d.diag.reliants(), MAX_LIST);
      return { reliants: r.list, reliantsLeftOut: r.leftOut, lastScan: d.diag.lastScan };
    },
    doctor: async (uid) => {
      await d.diag.fresh();
      const warnings = d.diag.current().filter((w) => uid === null || w.uid === uid);
      const r = rundirs(d, uid);
      const w = capped(warnings, MAX_LIST);
      const rel = capped(d.diag.reliants().filter((x) => uid === null || x.uid === uid), MAX_LIST);
      return {
        uid,
        mode: d.mode,
        healthy: warnings.length === 0,
        rundirs: r.rundirs,
        rundirsLeftOut: r.leftOut,
        warnings: w.list.map(warningDoc),
        warningsLeftOut: w.leftOut,
        reliants: rel.list,
        reliantsLeftOut: rel.leftOut,
        lastScan: d.diag.lastScan,
      };
    },
  };
}
