// What rundird made, kept across its own restarts: serialized after each settled turn that
// changed it, loaded at start, and checked against the disk by inode in the first sync of each
// UID (a record whose inode is not there any more is dropped, never trusted). A file that does
// not parse, or was written for another runtime root, is set aside and said, never half-read.
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { instanceOfPrivateDir } from '../world/instances.js';
import { checkRulePath } from '../world/links.js';
import { emptyMade, type Made } from './record.js';

export const STORE_VERSION = 1;
/** A bound on what is read back: a file larger than this is not ours to trust. */
export const STORE_MAX_BYTES = 64 * 1024 * 1024;

/** Where the records live: beside the API socket (`/run/rundird/`), one file per runtime root. */
export function storePath(apiSocket: string, runtimeRoot: string): string {
  const tag = createHash('sha256').update(runtimeRoot).digest('hex').slice(0, 12);
  return join(dirname(apiSocket), `made-${tag}.json`);
}

type Row = (string | number)[];

/** What is kept per UID: what was made in the rundir, and in an incarnation a mount covers. */
export interface Kept {
  made: Made;
  covered: Made | null;
}

const madeDoc = (m: Made) => ({
  rundir: [m.rundir!.ino, m.rundir!.dev],
  privdirs: [...m.privdirs].map(([n, r]) => [n, r.ino, r.dev]),
  links: [...m.links].map(([t, r]) => [t, r.ino, r.kind, r.source, r.rule, r.instance]),
  dirs: [...m.dirs].map(([d, r]) => [d, r.ino, r.dev, r.instance]),
});
const worth = (m: Made | null): m is Made => !!m?.rundir && m.privdirs.size + m.links.size + m.dirs.size > 0;

/** One UID's entry in the records file (JSON), or null when it has nothing worth keeping. */
export function serializeUid(k: Kept): string | null {
  if (!worth(k.made) && !worth(k.covered)) return null;
  return JSON.stringify({ ...(worth(k.made) ? madeDoc(k.made) : { rundir: [0, 0], privdirs: [], links: [], dirs: [] }), ...(worth(k.covered) ? { covered: madeDoc(k.covered) } : {}) });
}

/**
 * The records file from per-UID entries as serializeUid() makes them. The controller keeps
 * each UID's entry until that UID is synced again: with 10,000 rundirs, serializing every
 * record on each save took ~140 ms of the main thread, four times a second while logins came.
 */
export function assemble(runtimeRoot: string, entries: Iterable<readonly [number, string]>): string {
  const parts: string[] = [];
  for (const [uid, e] of entries) parts.push(`"${uid}":${e}`);
  return `{"version":${STORE_VERSION},"runtimeRoot":${JSON.stringify(runtimeRoot)},"uids":{${parts.join(',')}}}`;
}

export class StoreError extends Error {}

const isNat = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isStr = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= 4096;
const isPath = (x: unknown): x is string => isStr(x) && checkRulePath(x) === null && !/[*?]/.test(x);

function rows(x: unknown, what: string, width: number): Row[] {
  if (!Array.isArray(x) || x.some((r) => !Array.isArray(r) || r.length !== width)) throw new StoreError(`${what}: expected rows of ${width}`);
  return x as Row[];
}

/** Parses a records file; throws StoreError for anything that is not exactly what assemble() writes. */
export function parse(text: string, runtimeRoot: string): Map<number, Kept> {
  let doc: { version?: unknown; runtimeRoot?: unknown; uids?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch (e) {
    throw new StoreError(`not JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || doc.version !== STORE_VERSION) throw new StoreError(`not a version ${STORE_VERSION} records file`);
  if (doc.runtimeRoot !== runtimeRoot) throw new StoreError(`written for runtime root ${JSON.stringify(doc.runtimeRoot)?.slice(0, 200)}, not ${runtimeRoot}`);
  if (typeof doc.uids !== 'object' || doc.uids === null) throw new StoreError('no uids');
  const out = new Map<number, Kept>();
  for (const [k, v] of Object.entries(doc.uids as Record<string, unknown>)) {
    const uid = Number(k);
    if (!/^(0|[1-9][0-9]{0,9})$/.test(k) || uid > 0xfffffffe) throw new StoreError(`bad uid ${JSON.stringify(k).slice(0, 40)}`);
    const u = v as { covered?: unknown };
    if (typeof u !== 'object' || u === null) throw new StoreError(`uid ${uid}: not an object`);
    const made = parseMade(u, uid);
    out.set(uid, { made: made.rundir && made.rundir.ino === 0 && made.rundir.dev === 0 ? emptyMade() : made, covered: u.covered === undefined ? null : parseMade(u.covered, uid) });
  }
  return out;
}

function parseMade(x: unknown, uid: number): Made {
  const u = x as { rundir?: unknown; privdirs?: unknown; links?: unknown; dirs?: unknown };
  if (typeof u !== 'object' || u === null || !Array.isArray(u.rundir) || !isNat(u.rundir[0]) || !isNat(u.rundir[1])) throw new StoreError(`uid ${uid}: bad rundir`);
  const m = emptyMade();
  m.rundir = { ino: u.rundir[0], dev: u.rundir[1] };
  for (const [n, ino, dev] of rows(u.privdirs, `uid ${uid} privdirs`, 3)) {
    if (typeof n !== 'string' || instanceOfPrivateDir(n) === null || !isNat(ino) || !isNat(dev)) throw new StoreError(`uid ${uid}: bad private dir row`);
    m.privdirs.set(n, { ino, dev });
  }
  for (const [t, ino, kind, source, rule, instance] of rows(u.links, `uid ${uid} links`, 6)) {
    if (!isPath(t) || !isNat(ino) || (kind !== 'hard' && kind !== 'symlink') || !isPath(source) || !isStr(rule) || !isStr(instance)) throw new StoreError(`uid ${uid}: bad link row`);
    m.links.set(t, { ino, kind, source, rule, instance });
  }
  for (const [d, ino, dev, instance] of rows(u.dirs, `uid ${uid} dirs`, 4)) {
    if (!isPath(d) || !isNat(ino) || !isNat(dev) || !isStr(instance)) throw new StoreError(`uid ${uid}: bad dir row`);
    m.dirs.set(d, { ino, dev, instance });
  }
  return m;
}
