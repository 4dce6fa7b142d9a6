// What snapd's REST API says, checked field by field: instances, and which plugs and slots of
// each instance are connected. Anything malformed is an error, never half-trusted. Pure.
import { parseInstanceName } from './instances.js';

const isInstanceName = (s: string) => parseInstanceName(s) !== null;

export interface SnapdState {
  instances: Set<string>;
  /**
   * instance → the interfaces of its connected plugs. Never the plugs' names: a name is the
   * publisher's choice (a `network` plug may be named `desktop`), and a link is a security
   * decision that only the interface snapd mediates may entitle.
   */
  plugs: Map<string, Set<string>>;
  /** instance → the interfaces of its connected slots (never the slots' names). */
  slots: Map<string, Set<string>>;
}

export class SnapdAnswerError extends Error {}

function result(doc: unknown, what: string): unknown {
  const d = doc as { type?: unknown; status_code?: unknown; result?: unknown };
  if (typeof d !== 'object' || d === null || d.type !== 'sync') throw new SnapdAnswerError(`${what}: not a sync answer`);
  return d.result;
}

/**
 * GET /v2/snaps: every installed instance (`name` is the instance name) that is active. An
 * inactive one (`status: "installed"`: being removed or refreshed, or disabled) cannot run and
 * gets no private dir: snapd unlinks a snap before it deletes its data, including
 * /run/user/UID/snap.INSTANCE, so a snap being removed is inactive before that directory goes.
 */
export function parseSnaps(doc: unknown): Set<string> {
  const r = result(doc, '/v2/snaps');
  if (!Array.isArray(r)) throw new SnapdAnswerError('/v2/snaps: result is not a list');
  const out = new Set<string>();
  for (const s of r as unknown[]) {
    const { name, status } = (s ?? {}) as { name?: unknown; status?: unknown };
    if (typeof name !== 'string' || !isInstanceName(name)) throw new SnapdAnswerError(`/v2/snaps: bad snap name ${JSON.stringify(name)?.slice(0, 80)}`);
    if (status !== undefined && typeof status !== 'string') throw new SnapdAnswerError(`/v2/snaps: bad status for ${name}`);
    if (status === undefined || status === 'active') out.add(name);
  }
  return out;
}

const isName = (x: unknown): x is string => typeof x === 'string' && /^[a-z0-9][a-z0-9-]{0,63}$/.test(x);

/** GET /v2/connections: the established connections, as the interfaces of each instance's connected plugs and slots. */
export function parseConnections(doc: unknown): Pick<SnapdState, 'plugs' | 'slots'> {
  const r = result(doc, '/v2/connections') as { established?: unknown };
  if (typeof r !== 'object' || r === null || !Array.isArray(r.established)) throw new SnapdAnswerError('/v2/connections: no list of established connections');
  const plugs = new Map<string, Set<string>>();
  const slots = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, inst: string, ...names: string[]) => {
    const s = m.get(inst) ?? new Set<string>();
    for (const n of names) s.add(n);
    m.set(inst, s);
  };
  for (const c of r.established as unknown[]) {
    const { plug, slot, interface: iface } = (c ?? {}) as { plug?: { snap?: unknown; plug?: unknown }; slot?: { snap?: unknown; slot?: unknown }; interface?: unknown };
    if (!plug || !slot || typeof plug.snap !== 'string' || typeof slot.snap !== 'string' || !isInstanceName(plug.snap) || !isInstanceName(slot.snap) || !isName(plug.plug) || !isName(slot.slot) || !isName(iface)) {
      throw new SnapdAnswerError(`/v2/connections: malformed connection ${JSON.stringify(c)?.slice(0, 120)}`);
    }
    add(plugs, plug.snap, iface);
    add(slots, slot.snap, iface);
  }
  return { plugs, slots };
}
