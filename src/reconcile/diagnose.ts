// The diagnoser: from who relies on which rundir and where each rundir is in its life, the
// warnings that hold now. Pure. Each warning has a key that names its cause; the caller raises a
// warning once per key, so the key is what decides "once per cause, again when it changes".
import { describeSession, type LifecycleState, type SessionInfo } from '../world/logind.js';
import type { Reliant } from '../world/reliance.js';

export type WarningEvent = 'reliant-without-linger' | 'rundir-closing-under-services' | 'sockets-hidden-by-mount' | 'rundir-purged-under-services' | 'runtime-dir-missing';

/** What happened to a rundir since it last became live: one "cycle" of its life. */
export interface CycleFacts {
  /** Counts cycles: keys of cycle warnings carry it, so the next cycle warns afresh. */
  n: number;
  /** The last session closed and the stop delay started (or the stop job came straight away). */
  closing: { session: SessionInfo | null; deadline: string | null } | null;
  /** The rundir was removed after having been live. */
  purged: { session: SessionInfo | null; at: string } | null;
  /** A tmpfs start was queued, or a filesystem mounted, while the path was a plain directory. */
  startOverPlain: boolean;
}

export interface UidView {
  uid: number;
  path: string;
  /** The user's name for commands (the UID when unknown). */
  name: string;
  lifecycle: LifecycleState;
  /** null: not known (no logind). */
  linger: boolean | null;
  cycle: CycleFacts;
}

export interface DiagInput {
  mode: 'logind' | 'inotify';
  reliants: Reliant[];
  views: Map<number, UidView>;
  /** Paths (XDG_RUNTIME_DIR values, socket paths) that do not exist now. */
  missing: Set<string>;
}

export interface Warning {
  event: WarningEvent;
  key: string;
  uid: number;
  path: string;
  unit: string | null;
  /** The unit, or the process when it has none. */
  subject: string;
  pid: number | null;
  instance: string | null;
  message: string;
  remedy: string;
  fields: Record<string, unknown>;
}

function sessionFields(s: SessionInfo | null): Record<string, unknown> {
  return s ? { session_id: s.id, session_service: s.service, session_tty: s.tty, session_remote_host: s.remoteHost } : {};
}

/** The real fixes, most direct first. */
export function remedyFor(v: UidView, r: Reliant | null): string {
  const unit = r?.unit;
  const lines = [
    `Keep ${v.path} for good: loginctl enable-linger ${v.name}`,
    unit && unit.endsWith('.service')
      ? `Or give ${unit} a login session of its own: systemctl edit ${unit}, and under [Service] set User=${v.name} and PAMName=login`
      : `Or run it as a service with a login session of its own (User=${v.name} and PAMName=login in its unit)`,
  ];
  if (r?.snapInstance) lines.push(`Or keep the snap's sockets in $SNAP_COMMON/run (/var/snap/${r.snapInstance.split('_')[0]}/common/run) and share them through a content interface, not under XDG_RUNTIME_DIR`);
  return lines.join('\n');
}

function base(v: UidView, r: Reliant, event: WarningEvent, key: string): Omit<Warning, 'message' | 'remedy' | 'fields'> {
  return { event, key, uid: v.uid, path: v.path, unit: r.unit, subject: r.label, pid: r.mainPid > 0 ? r.mainPid : null, instance: r.snapInstance };
}

function how(r: Reliant): string {
  const parts: string[] = [];
  if (r.xdgRuntimeDirs.length) parts.push(`XDG_RUNTIME_DIR=${r.xdgRuntimeDirs[0]}`);
  if (r.sockets.length) parts.push(`listening on ${r.sockets.slice(0, 3).join(', ')}${r.sockets.length > 3 ? ` and ${r.sockets.length - 3} more` : ''}`);
  if (r.files.length || r.deleted.length) parts.push(`${r.files.length + r.deleted.length} open files`);
  if (r.via.includes('cwd')) parts.push('its working directory');
  return parts.join('; ');
}

const MAX_LISTED = 20;

export function diagnose(input: DiagInput): Warning[] {
  const out: Warning[] = [];
  for (const r of input.reliants) {
    const v = input.views.get(r.uid);
    if (!v || r.inSession) continue;
    const who = `${r.label}${r.snapInstance ? ` (snap ${r.snapInstance})` : ''}`;
    const common = { via: r.via, pids: r.pids.slice(0, MAX_LISTED), run_as: r.runAs, comm: r.comm };

    if (input.mode === 'logind' && v.linger === false && v.lifecycle !== 'absent') {
      out.push({
        ...base(v, r, 'reliant-without-linger', `linger:${r.uid}:${r.key}`),
        message: `${who} runs outside any login session of UID ${r.uid} and relies on ${v.path} (${how(r)}), but UID ${r.uid} does not linger: logind will delete ${v.path} when the last session of UID ${r.uid} closes`,
        remedy: remedyFor(v, r),
        fields: common,
      });
    }

    if (v.cycle.closing) {
      const c = v.cycle.closing;
      out.push({
        ...base(v, r, 'rundir-closing-under-services', `closing:${r.uid}:${v.cycle.n}:${r.key}`),
        message: `${v.path} is being closed after ${describeSession(c.session)} ended${c.deadline ? `; logind removes it at ${c.deadline}` : ''}, and ${who} still relies on it (${how(r)})`,
        remedy: remedyFor(v, r),
        fields: { ...common, deadline: c.deadline ?? undefined, ...sessionFields(c.session) },
      });
    }

    if (v.cycle.purged) {
      const gone = [...r.sockets.filter((s) => input.missing.has(s)), ...r.deleted, ...r.xdgRuntimeDirs.filter((d) => input.missing.has(d))];
      if (gone.length > 0) {
        const p = v.cycle.purged;
        out.push({
          ...base(v, r, 'rundir-purged-under-services', `purged:${r.uid}:${v.cycle.n}:${r.key}`),
          message: `${v.path} was removed${p.session ? ` after ${describeSession(p.session)} ended` : ''}, under ${who}, which still runs: gone are ${gone.slice(0, 5).join(', ')}${gone.length > 5 ? ` and ${gone.length - 5} more` : ''}`,
          remedy: `Restart ${r.unit ?? `the process ${r.mainPid}`} to get its sockets back now; to stop this happening:\n${remedyFor(v, r)}`,
          fields: { ...common, gone: gone.slice(0, MAX_LISTED), ...sessionFields(p.session) },
        });
      }
    }

    for (const dir of r.xdgRuntimeDirs) {
      if (!input.missing.has(dir)) continue;
      out.push({
        // Per cycle: logind's purge unmounts first, so the plain dir underneath shows for a moment
        // before it goes too; that flicker is not a new cause.
        ...base(v, r, 'runtime-dir-missing', `missing:${r.uid}:${v.cycle.n}:${r.key}:${dir}`),
        message: `${who} has XDG_RUNTIME_DIR=${dir}, which does not exist: whatever it creates there fails`,
        remedy: `Restart ${r.unit ?? `the process ${r.mainPid}`} once ${v.path} exists again (rundird re-creates snap private dirs in a live rundir); then keep it from going:\n${remedyFor(v, r)}`,
        fields: { ...common, xdg_runtime_dir: dir },
      });
    }
  }

  for (const v of input.views.values()) {
    // Raised while a mount starts to cover the sockets, or covers them: once the rundir is
    // closing, the closing warning says what comes (and after a purge the purge warning).
    if (!v.cycle.startOverPlain || v.cycle.purged || (v.lifecycle !== 'starting' && v.lifecycle !== 'live')) continue;
    // Hidden means: bound under the path, and not reachable there now (a socket made on the
    // tmpfs after it came is not hidden).
    const holders = input.reliants.filter((r) => r.uid === v.uid && r.sockets.some((x) => input.missing.has(x)));
    if (holders.length === 0) continue;
    const sockets = holders.flatMap((r) => r.sockets.filter((x) => input.missing.has(x))).slice(0, MAX_LISTED);
    const first = holders[0]!;
    out.push({
      event: 'sockets-hidden-by-mount',
      key: `hidden:${v.uid}:${v.cycle.n}`,
      uid: v.uid,
      path: v.path,
      unit: first.unit,
      subject: first.label,
      pid: first.mainPid,
      instance: first.snapInstance,
      message: `a tmpfs ${v.lifecycle === 'starting' ? 'is being mounted' : 'is mounted'} over the plain directory ${v.path}, which holds live sockets of ${holders.map((h) => h.label).join(', ')}: ${sockets.join(', ')} are hidden under the mount and unreachable until it goes`,
      remedy: `Restart ${holders.map((h) => h.unit ?? `process ${h.mainPid}`).join(', ')} so that their sockets are made on the tmpfs; to have the tmpfs there before they start:\n${remedyFor(v, first)}`,
      fields: { sockets, units: holders.map((h) => h.label) },
    });
  }
  return out;
}
