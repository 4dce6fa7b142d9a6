// The API's documents, built from what the daemon believes now. Plain JSON; rundirctl and
// scripts read the same shapes (docs/api.md).
import type { Daemon } from '../daemon/daemon.js';
import { EVENTS } from '../journal/events.js';
import type { Warning } from '../reconcile/diagnose.js';
import { VERSION } from '../version.js';
import type { ApiHandlers } from './server.js';

const MAX_LIST = 1000;

export function warningDoc(w: Warning) {
  return { event: w.event, messageId: EVENTS[w.event].id, priority: EVENTS[w.event].priority, uid: w.uid, path: w.path, unit: w.unit, subject: w.subject, pid: w.pid, instance: w.instance, message: w.message, remedy: w.remedy, fields: w.fields };
}

function rundirs(d: Daemon, only: number | null) {
  const st = d.state();
  const warnings = d.diag.current();
  const uids = new Set([...st.map((s) => s.uid), ...warnings.map((w) => w.uid)]);
  return [...uids]
    .filter((u) => only === null || u === only)
    .sort((a, b) => a - b)
    .slice(0, MAX_LIST)
    .map((uid) => {
      const s = st.find((x) => x.uid === uid);
      return {
        uid,
        path: s?.path ?? `${d.config.runtimeRoot}/${uid}`,
        status: s?.status ?? 'absent',
        lifecycle: s?.lifecycle ?? 'absent',
        linger: d.linger(uid),
        privateDirs: s?.privateDirs ?? [],
        problems: s?.problems ?? [],
        warnings: warnings.filter((w) => w.uid === uid).length,
        reliants: d.diag.reliants().filter((r) => r.uid === uid && !r.inSession).length,
        links: d.links(uid),
      };
    });
}

export function handlersFor(d: Daemon): ApiHandlers {
  return {
    status: () => ({
      version: VERSION,
      pid: process.pid,
      mode: d.mode,
      summary: d.summary(),
      runtimeRoot: d.config.runtimeRoot,
      rundirs: rundirs(d, null),
      instances: d.instances(),
      warnings: d.diag.current().slice(0, MAX_LIST).map(warningDoc),
      lastScan: d.diag.lastScan,
    }),
    timeline: (uid) => {
      const t = d.timeline(uid);
      return t.length === 0 ? null : { uid, path: `${d.config.runtimeRoot}/${uid}`, timeline: t };
    },
    warnings: () => ({ warnings: d.diag.current().slice(0, MAX_LIST).map(warningDoc) }),
    reliants: () => ({ reliants: d.diag.reliants().slice(0, MAX_LIST), lastScan: d.diag.lastScan }),
    doctor: async (uid) => {
      await d.diag.fresh();
      const warnings = d.diag.current().filter((w) => uid === null || w.uid === uid);
      return {
        uid,
        mode: d.mode,
        healthy: warnings.length === 0,
        rundirs: rundirs(d, uid),
        warnings: warnings.slice(0, MAX_LIST).map(warningDoc),
        reliants: d.diag.reliants().filter((r) => uid === null || r.uid === uid).slice(0, MAX_LIST),
        lastScan: d.diag.lastScan,
      };
    },
  };
}
