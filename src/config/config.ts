// The configuration: one YAML file whose keys are the command-line flags' names. Validation
// errors name the file, the line and the key, so that an admin can fix them without guessing.
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { LineCounter, parseDocument, stringify, isMap, isSeq, isScalar, type Node, type Document } from 'yaml';
import { globToRegExp } from '../world/instances.js';
import { checkRuleGraph } from '../reconcile/links.js';
import { DEFAULT_LINK_RULES, checkRulePath, type LinkRule } from '../world/links.js';

export type RescuePolicy = 'linger' | 'restore';
export const RESCUE_POLICIES: readonly RescuePolicy[] = ['linger', 'restore'];

export const DEFAULT_CONFIG_PATH = '/etc/rundird/rundird.yaml';
export const CONFIG_ENV = 'RUNDIRD_CONFIG';

export interface UidRange {
  from: number;
  to: number;
}

export interface InstanceFilter {
  include: string[];
  exclude: string[];
}

export interface Config {
  runtimeRoot: string;
  snapRoot: string;
  mountinfo: string;
  /** Where processes are read from (a fixture tree in tests). */
  procRoot: string;
  /** The status API's Unix socket. */
  apiSocket: string;
  /** A group (name or GID) whose members may use the API besides root; null: root only. */
  apiGroup: string | null;
  /** snapd's REST socket, and the state file whose changes mean "ask again". */
  snapdSocket: string;
  snapdState: string;
  /** Link rules (docs/links.md); the shipped defaults unless the config says otherwise. */
  links: LinkRule[];
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** Seconds an instance must stay gone from the snap inventory before its dirs are cleaned up (refreshes relink `current`). */
  snapRemovalGrace: number;
  /**
   * The most entries rundird reads of one directory in a rundir (and the most link candidates
   * of one rundir): a user's million files are reported, never walked on every event.
   */
  maxEntries: number;
  /** A directory (node_exporter's textfile collector's) where rundird.prom is kept up to date; null: none. */
  metricsTextfile: string | null;
  /** UID as a label of the per-rundir counters: a series per UID (a small device only). */
  metricsUidLabels: boolean;
  /** --observe-only: nothing is written; diagnosis also reads the global socket table. */
  observeOnly?: boolean;
  /** Kiosk rescue, opt-in per UID (docs/kiosk.md): `linger` and/or `restore`. */
  rescue: Map<number, Set<RescuePolicy>>;
  privateDirs: {
    /** null: every UID. */
    uids: UidRange[] | null;
    filter: InstanceFilter;
    perUid: Map<number, Partial<InstanceFilter>>;
  };
}

export const DEFAULTS: Config = {
  runtimeRoot: '/run/user',
  snapRoot: '/snap',
  mountinfo: '/proc/self/mountinfo',
  procRoot: '/proc',
  apiSocket: '/run/rundird/api.sock',
  apiGroup: null,
  snapdSocket: '/run/snapd.socket',
  snapdState: '/var/lib/snapd/state.json',
  links: DEFAULT_LINK_RULES,
  logLevel: 'info',
  snapRemovalGrace: 30,
  maxEntries: 4096,
  metricsTextfile: null,
  metricsUidLabels: false,
  rescue: new Map(),
  privateDirs: { uids: null, filter: { include: ['*'], exclude: [] }, perUid: new Map() },
};

/** The keys that are also flags (`--runtime-root` …). */
export type PathKey = 'runtime-root' | 'snap-root' | 'mountinfo' | 'proc-root' | 'api-socket';
export type Overrides = Partial<Record<PathKey, string>>;

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | null,
    readonly key: string | null,
    readonly detail: string,
  ) {
    super(`${file}${line ? `:${line}` : ''}: ${key ? `key "${key}": ` : ''}${detail}`);
  }
}

const MAX_UID = 0xfffffffe; // (uid_t)-1 is "no uid"

function parseUid(s: string): number | null {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(s)) return null;
  const n = Number(s);
  return n <= MAX_UID ? n : null;
}

export { parseUid };

class Validator {
  constructor(
    private readonly file: string,
    private readonly lines: LineCounter,
  ) {}

  fail(node: Node | null | undefined, key: string, detail: string): never {
    const off = node?.range?.[0];
    const line = off === undefined ? null : this.lines.linePos(off).line;
    throw new ConfigError(this.file, line, key, detail);
  }

  str(node: Node | null, key: string): string {
    if (!isScalar(node) || typeof node.value !== 'string' || node.value === '') {
      this.fail(node, key, 'expected a non-empty string');
    }
    return node.value;
  }

  absPath(node: Node | null, key: string): string {
    const s = this.str(node, key);
    if (!isAbsolute(s)) this.fail(node, key, `expected an absolute path, got "${s}"`);
    return s;
  }

  globs(node: Node | null, key: string): string[] {
    if (!isSeq(node)) this.fail(node, key, 'expected a list of instance names or globs (* and ?)');
    if (node.items.length > CONFIG_LIMITS.globs) this.fail(node, key, `${node.items.length} entries; at most ${CONFIG_LIMITS.globs}`);
    return node.items.map((item, i) => {
      const g = this.str(item as Node, `${key}[${i}]`);
      if (!/^[a-z0-9_*?-]+$/.test(g)) {
        this.fail(item as Node, `${key}[${i}]`, `"${g}" is not an instance name or glob (letters, digits, -, _, * and ?)`);
      }
      globToRegExp(g);
      return g;
    });
  }

  filter(node: Node | null, key: string, allowed: readonly string[]): Partial<InstanceFilter> {
    if (!isMap(node)) this.fail(node, key, 'expected a mapping');
    const out: Partial<InstanceFilter> = {};
    for (const pair of node.items) {
      const k = String((pair.key as Node & { value?: unknown })?.toString?.() ?? '');
      if (!allowed.includes(k)) continue;
      if (k === 'include') out.include = this.globs(pair.value as Node, `${key}.include`);
      if (k === 'exclude') out.exclude = this.globs(pair.value as Node, `${key}.exclude`);
    }
    return out;
  }

  uids(node: Node | null, key: string): UidRange[] | null {
    if (isScalar(node) && node.value === 'all') return null;
    if (!isSeq(node)) this.fail(node, key, 'expected "all" or a list of UIDs and ranges such as 1000-59999');
    return node.items.map((item, i) => {
      const k = `${key}[${i}]`;
      const raw = isScalar(item) ? String(item.value) : '';
      const m = /^(\d+)(?:-(\d+))?$/.exec(raw);
      const from = m ? parseUid(m[1]!) : null;
      const to = m ? (m[2] === undefined ? from : parseUid(m[2])) : null;
      if (from === null || to === null || to < from) this.fail(item as Node, k, `"${raw}" is not a UID or a range FROM-TO`);
      return { from, to };
    });
  }

  number(node: Node | null, key: string, min: number, max: number): number {
    if (!isScalar(node) || typeof node.value !== 'number' || !Number.isFinite(node.value) || node.value < min || node.value > max) {
      this.fail(node, key, `expected a number from ${min} to ${max}`);
    }
    return node.value;
  }
}

/** A key that is shown in an error: only what looks like a config key (never a line of some other file). */
const SHOWN_KEY = /^[a-z0-9][a-z0-9-]{0,39}$/;

function checkKeys(v: Validator, node: Node, prefix: string, allowed: readonly string[]): void {
  if (!isMap(node)) return;
  const seen = new Set<string>();
  for (const pair of node.items) {
    const keyNode = pair.key as Node;
    const k = isScalar(keyNode) ? String(keyNode.value) : '';
    if (!allowed.includes(k)) {
      // A file that is not a config (a path to a secret, say) can parse as a mapping whose key
      // is a whole line of it: that is never quoted into the journal.
      if (!SHOWN_KEY.test(k)) v.fail(keyNode, prefix + '(not shown)', `not a config key; is this a rundird configuration file? (known keys: ${allowed.join(', ')})`);
      v.fail(keyNode, prefix + k, `unknown key (known: ${allowed.join(', ')})`);
    }
    if (seen.has(k)) v.fail(keyNode, prefix + k, 'YAML syntax: a mapping key given twice');
    seen.add(k);
  }
}

/** The UID a per-UID mapping's key names (quoted only if it looks like a key), refused once given twice. */
function uidKey(v: Validator, keyNode: Node, prefix: string, seen: { has(uid: number): boolean }): number {
  const raw = isScalar(keyNode) ? String(keyNode.value) : '';
  const uid = parseUid(raw);
  if (uid === null) v.fail(keyNode, `${prefix}.${SHOWN_KEY.test(raw) ? raw : '(not shown)'}`, SHOWN_KEY.test(raw) ? `"${raw}" is not a UID` : 'not a UID');
  if (seen.has(uid)) v.fail(keyNode, `${prefix}.${uid}`, 'YAML syntax: a mapping key given twice');
  return uid;
}

/** Bounds on lists and maps a config may hold (the file itself is at most 1 MiB). */
export const CONFIG_LIMITS = { users: 4096, links: 256, globs: 256 };

function bounded(v: Validator, node: Node & { items: unknown[] }, key: string, max: number): void {
  if (node.items.length > max) v.fail(node, key, `${node.items.length} entries; at most ${max}`);
}

const TOP_KEYS = ['runtime-root', 'snap-root', 'mountinfo', 'proc-root', 'api-socket', 'api-group', 'snapd-socket', 'snapd-state', 'links', 'log-level', 'snap-removal-grace', 'max-entries', 'rescue', 'private-dirs', 'metrics-textfile', 'metrics-uid-labels'] as const;
const PRIVATE_KEYS = ['uids', 'include', 'exclude', 'users'] as const;
const FILTER_KEYS = ['include', 'exclude'] as const;
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

const LINK_KEYS = ['name', 'source', 'target', 'kind', 'on-exdev', 'plugs', 'slots', 'instances'] as const;
const NAME_LIST = /^[a-z0-9][a-z0-9-]*$/;

function parseLinkRules(v: Validator, node: Node): LinkRule[] {
  if (!isSeq(node)) v.fail(node, 'links', 'expected a list of link rules');
  bounded(v, node, 'links', CONFIG_LIMITS.links);
  const rules = parseLinkRuleList(v, node);
  const cycle = checkRuleGraph(rules);
  if (cycle) v.fail(node, 'links', `the rules ${cycle.rules.map((r) => `"${r}"`).join(', ')} form a cycle: each links what another made, onto a new path every time; change a source or a target so that the chain ends`);
  return rules;
}

function parseLinkRuleList(v: Validator, node: Node & { items: unknown[] }): LinkRule[] {
  const names = new Set<string>();
  return node.items.map((item, i) => {
    const k = `links[${i}]`;
    if (!isMap(item)) v.fail(item as Node, k, 'expected a mapping with name, source, target and who gets it');
    checkKeys(v, item as Node, `${k}.`, LINK_KEYS);
    const get = (key: string) => item.get(key, true) as Node | undefined;
    const need = (key: string) => {
      const n = get(key);
      if (n === undefined) v.fail(item as Node, `${k}.${key}`, 'missing');
      return v.str(n, `${k}.${key}`);
    };
    const name = need('name');
    if (names.has(name)) v.fail(get('name'), `${k}.name`, `"${name}" is used by an earlier rule`);
    names.add(name);
    const path = (key: string) => {
      const s = need(key);
      const bad = checkRulePath(s);
      if (bad) v.fail(get(key), `${k}.${key}`, `"${s}": ${bad}`);
      return s;
    };
    const source = path('source');
    const target = path('target');
    if (!source.includes('{instance}') && !target.includes('{instance}')) v.fail(get('target'), `${k}.target`, 'the source or the target must be in a private dir: use {instance}');
    if (/[*?]/.test(target)) v.fail(get('target'), `${k}.target`, 'no globs in a target; use {name}');
    const kindNode = get('kind');
    const kind = kindNode === undefined ? 'hard' : v.str(kindNode, `${k}.kind`);
    if (kind !== 'hard' && kind !== 'symlink') v.fail(kindNode, `${k}.kind`, 'expected hard or symlink');
    const exNode = get('on-exdev');
    const exdev = exNode === undefined ? 'warn' : v.str(exNode, `${k}.on-exdev`);
    if (exdev !== 'warn' && exdev !== 'symlink') v.fail(exNode, `${k}.on-exdev`, 'expected warn or symlink');
    const list = (key: 'plugs' | 'slots') => {
      const n = get(key);
      if (n === undefined) return [];
      if (!isSeq(n)) v.fail(n, `${k}.${key}`, 'expected a list of plug, slot or interface names');
      return n.items.map((x, j) => {
        const s = v.str(x as Node, `${k}.${key}[${j}]`);
        if (!NAME_LIST.test(s)) v.fail(x as Node, `${k}.${key}[${j}]`, `"${s}" is not a plug, slot or interface name`);
        return s;
      });
    };
    const inst = get('instances');
    const rule: LinkRule = { name, source, target, kind, exdev, to: { plugs: list('plugs'), slots: list('slots'), instances: inst === undefined ? [] : v.globs(inst, `${k}.instances`) } };
    if (rule.to.plugs.length + rule.to.slots.length + rule.to.instances.length === 0) v.fail(item as Node, k, 'says nobody gets it: give plugs, slots or instances');
    return rule;
  });
}

/** Validates a config file's text. Throws ConfigError. */
export function parseConfig(text: string, file: string): Config {
  const lines = new LineCounter();
  // Duplicate keys are found by checkKeys in one pass: the yaml library's own check compares
  // every key with every other (100k keys took 43 s, on the event loop at SIGHUP).
  const doc: Document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const v: Validator = new Validator(file, lines);
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ConfigError(file, lines.linePos(e.pos[0]).line, null, `YAML syntax: ${e.message.split('\n')[0]}`);
  }
  const cfg: Config = structuredClone(DEFAULTS);
  const root = doc.contents as Node | null;
  if (root === null || (isScalar(root) && root.value === null)) return cfg; // an empty file means defaults
  if (!isMap(root)) v.fail(root, '(top level)', 'expected a mapping of keys to values');
  checkKeys(v, root, '', TOP_KEYS);
  const get = (k: string) => root.get(k, true) as Node | undefined;

  const rr = get('runtime-root');
  if (rr !== undefined) cfg.runtimeRoot = v.absPath(rr, 'runtime-root');
  const sr = get('snap-root');
  if (sr !== undefined) cfg.snapRoot = v.absPath(sr, 'snap-root');
  const mi = get('mountinfo');
  if (mi !== undefined) cfg.mountinfo = v.absPath(mi, 'mountinfo');
  const pr = get('proc-root');
  if (pr !== undefined) cfg.procRoot = v.absPath(pr, 'proc-root');
  const as = get('api-socket');
  if (as !== undefined) cfg.apiSocket = v.absPath(as, 'api-socket');
  const ag = get('api-group');
  if (ag !== undefined) {
    const g = isScalar(ag) && typeof ag.value === 'number' ? String(ag.value) : v.str(ag, 'api-group');
    if (!/^([a-z_][a-z0-9_-]*\$?|\d+)$/i.test(g)) v.fail(ag, 'api-group', `"${g}" is not a group name or GID`);
    cfg.apiGroup = g;
  }
  const ss = get('snapd-socket');
  if (ss !== undefined) cfg.snapdSocket = v.absPath(ss, 'snapd-socket');
  const st = get('snapd-state');
  if (st !== undefined) cfg.snapdState = v.absPath(st, 'snapd-state');
  const lk = get('links');
  if (lk !== undefined) cfg.links = parseLinkRules(v, lk);
  const ll = get('log-level');
  if (ll !== undefined) {
    const s = v.str(ll, 'log-level');
    if (!(LOG_LEVELS as readonly string[]).includes(s)) v.fail(ll, 'log-level', `expected one of ${LOG_LEVELS.join(', ')}`);
    cfg.logLevel = s as Config['logLevel'];
  }
  const grace = get('snap-removal-grace');
  if (grace !== undefined) cfg.snapRemovalGrace = v.number(grace, 'snap-removal-grace', 0, 86400);
  const me = get('max-entries');
  if (me !== undefined) cfg.maxEntries = Math.floor(v.number(me, 'max-entries', 64, 1_000_000));
  const mt = get('metrics-textfile');
  if (mt !== undefined) cfg.metricsTextfile = v.absPath(mt, 'metrics-textfile');
  const mu = get('metrics-uid-labels');
  if (mu !== undefined) {
    if (!isScalar(mu) || typeof mu.value !== 'boolean') v.fail(mu, 'metrics-uid-labels', 'expected true or false');
    cfg.metricsUidLabels = mu.value;
  }

  const rs = get('rescue');
  if (rs !== undefined) {
    if (!isMap(rs)) v.fail(rs, 'rescue', 'expected a mapping of UID to a list of policies (linger, restore)');
    bounded(v, rs, 'rescue', CONFIG_LIMITS.users);
    for (const pair of rs.items) {
      const uid = uidKey(v, pair.key as Node, 'rescue', cfg.rescue);
      const list = pair.value as Node;
      if (!isSeq(list) || list.items.length === 0) v.fail(list, `rescue.${uid}`, `expected a list of policies: ${RESCUE_POLICIES.join(', ')}`);
      const set = new Set<RescuePolicy>();
      for (const [i, item] of list.items.entries()) {
        const p = v.str(item as Node, `rescue.${uid}[${i}]`);
        if (!(RESCUE_POLICIES as readonly string[]).includes(p)) v.fail(item as Node, `rescue.${uid}[${i}]`, `"${SHOWN_KEY.test(p) ? p : '(not shown)'}" is not a policy (${RESCUE_POLICIES.join(', ')})`);
        set.add(p as RescuePolicy);
      }
      cfg.rescue.set(uid, set);
    }
  }

  const pd = get('private-dirs');
  if (pd !== undefined) {
    if (!isMap(pd)) v.fail(pd, 'private-dirs', 'expected a mapping');
    checkKeys(v, pd, 'private-dirs.', PRIVATE_KEYS);
    const uids = pd.get('uids', true) as Node | undefined;
    if (uids !== undefined) cfg.privateDirs.uids = v.uids(uids, 'private-dirs.uids');
    const f = v.filter(pd, 'private-dirs', FILTER_KEYS);
    if (f.include) cfg.privateDirs.filter.include = f.include;
    if (f.exclude) cfg.privateDirs.filter.exclude = f.exclude;
    const users = pd.get('users', true) as Node | undefined;
    if (users !== undefined) {
      if (!isMap(users)) v.fail(users, 'private-dirs.users', 'expected a mapping of UID to include/exclude lists');
      bounded(v, users, 'private-dirs.users', CONFIG_LIMITS.users);
      for (const pair of users.items) {
        const uid = uidKey(v, pair.key as Node, 'private-dirs.users', cfg.privateDirs.perUid);
        const k = `private-dirs.users.${uid}`;
        checkKeys(v, pair.value as Node, `${k}.`, FILTER_KEYS);
        cfg.privateDirs.perUid.set(uid, v.filter(pair.value as Node, k, FILTER_KEYS));
      }
    }
  }
  return cfg;
}

/** A config file is at most this large: a bigger one is not a config file. */
export const CONFIG_MAX_BYTES = 1024 * 1024;
const DEV_NULL_RDEV = (1 << 8) | 3;

/**
 * The config file's text. Opened without blocking and refused unless it is a regular file (or
 * /dev/null, which is empty): a FIFO at the path must not hang the start or a SIGHUP.
 */
function readConfigText(file: string): string {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const st = fstatSync(fd);
    if (st.isCharacterDevice() && st.rdev === DEV_NULL_RDEV) return '';
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EINVAL' });
    if (st.size > CONFIG_MAX_BYTES) throw Object.assign(new Error(`larger than ${CONFIG_MAX_BYTES} bytes`), { code: 'EFBIG' });
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads and validates the config file. `explicit` says the path was asked for (flag or
 * environment): then a missing file is an error; the default path may be absent (defaults apply).
 */
export function loadConfig(file: string, explicit: boolean, overrides: Overrides = {}): Config {
  let text: string;
  try {
    text = readConfigText(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT' && !explicit) text = '';
    else throw new ConfigError(file, null, null, `cannot read: ${err.message}`);
  }
  const cfg = parseConfig(text, file);
  return applyOverrides(cfg, overrides);
}

export function applyOverrides(cfg: Config, o: Overrides): Config {
  const out = { ...cfg };
  for (const [k, val] of Object.entries(o) as [PathKey, string | undefined][]) {
    if (val === undefined) continue;
    if (!isAbsolute(val)) throw new ConfigError('(command line)', null, k, `expected an absolute path, got "${val}"`);
    if (k === 'runtime-root') out.runtimeRoot = val;
    if (k === 'snap-root') out.snapRoot = val;
    if (k === 'mountinfo') out.mountinfo = val;
    if (k === 'proc-root') out.procRoot = val;
    if (k === 'api-socket') out.apiSocket = val;
  }
  return out;
}

export function uidSelected(cfg: Config, uid: number): boolean {
  const r = cfg.privateDirs.uids;
  return r === null || r.some((x) => uid >= x.from && uid <= x.to);
}

/** The include/exclude globs in force for one UID (a per-UID list replaces the global one). */
export function filterFor(cfg: Config, uid: number): { include: RegExp[]; exclude: RegExp[] } {
  const per = cfg.privateDirs.perUid.get(uid) ?? {};
  const include = per.include ?? cfg.privateDirs.filter.include;
  const exclude = per.exclude ?? cfg.privateDirs.filter.exclude;
  return { include: include.map(globToRegExp), exclude: exclude.map(globToRegExp) };
}

/**
 * The configuration in force, in the file's own syntax and key names, so that it can be pasted
 * back (as `sshd -T` prints sshd's): what `rundird --check-config` prints. parseConfig of it
 * gives the same configuration.
 */
export function configToYaml(cfg: Config): string {
  const range = (r: UidRange) => (r.from === r.to ? String(r.from) : `${r.from}-${r.to}`);
  const filter = (f: Partial<InstanceFilter>) => ({ ...(f.include ? { include: f.include } : {}), ...(f.exclude ? { exclude: f.exclude } : {}) });
  const doc: Record<string, unknown> = {
    'runtime-root': cfg.runtimeRoot,
    'snap-root': cfg.snapRoot,
    mountinfo: cfg.mountinfo,
    'proc-root': cfg.procRoot,
    'api-socket': cfg.apiSocket,
    ...(cfg.apiGroup !== null ? { 'api-group': cfg.apiGroup } : {}),
    'snapd-socket': cfg.snapdSocket,
    'snapd-state': cfg.snapdState,
    'log-level': cfg.logLevel,
    'snap-removal-grace': cfg.snapRemovalGrace,
    'max-entries': cfg.maxEntries,
    ...(cfg.metricsTextfile !== null ? { 'metrics-textfile': cfg.metricsTextfile } : {}),
    ...(cfg.metricsUidLabels ? { 'metrics-uid-labels': true } : {}),
    'private-dirs': {
      uids: cfg.privateDirs.uids === null ? 'all' : cfg.privateDirs.uids.map(range),
      ...filter(cfg.privateDirs.filter),
      ...(cfg.privateDirs.perUid.size > 0 ? { users: Object.fromEntries([...cfg.privateDirs.perUid].map(([uid, f]) => [uid, filter(f)])) } : {}),
    },
    ...(cfg.rescue.size > 0 ? { rescue: Object.fromEntries([...cfg.rescue].map(([uid, p]) => [uid, [...p]])) } : {}),
    links: cfg.links.map((r) => ({
      name: r.name,
      source: r.source,
      target: r.target,
      kind: r.kind,
      'on-exdev': r.exdev,
      ...(r.to.plugs.length ? { plugs: r.to.plugs } : {}),
      ...(r.to.slots.length ? { slots: r.to.slots } : {}),
      ...(r.to.instances.length ? { instances: r.to.instances } : {}),
    })),
  };
  return stringify(doc, { lineWidth: 0 });
}
