// Links, pure: which links the rules want (expandLinks), what a rundir holds for them read
// through an injected reader (readLinkWorld: RundirIO, world/links.ts), and from that and what
// rundird made, the actions and problems (planLinks). No I/O of its own.
//
// A link is a security decision: only sockets and regular files owned by the rundir's UID are
// linked, and nothing rundird did not make is ever removed or replaced. A link rundird made is
// never the source of another link: a chain of rules (a server snap's socket linked out into
// the rundir, then into its clients) resolves to the real source, so a server rule can never
// claim a client's socket, and a source that goes takes every link made from it in one plan.
import { posix } from 'node:path';
import { globToRegExp } from '../world/instances.js';
import { expandRulePath, parentOf, TEMP_PREFIX, type LinkKind, type LinkRule, type RundirIO } from '../world/links.js';
import { OVERFULL } from '../world/read.js';
import type { NodeStat } from '../world/types.js';

/** What rundird made at a target: the link's own inode (for a hard link, the source's too). */
export interface LinkRecord {
  ino: number;
  kind: LinkKind;
  /** The real source it was made from (never another link of rundird's). */
  source: string;
  rule: string;
  instance: string;
}

/** A directory rundird made on the way to a link's target (`snap.X/pulse`). */
export interface DirRecord {
  ino: number;
  dev: number;
  instance: string;
}

export interface LinkCandidate {
  rule: string;
  instance: string;
  /** The real source. */
  source: string;
  target: string;
  kind: LinkKind;
  exdev: 'symlink' | 'warn';
  /** The link of rundird's this one is chained from, if any. */
  via: string | null;
}

export type LinkAction =
  | { op: 'link'; rule: string; instance: string; source: string; target: string; kind: LinkKind; exdev: 'symlink' | 'warn'; sourceIno: number; replace: boolean; mkdirs: string[]; owner: number; group: number }
  | { op: 'unlink'; target: string; ino: number; why: 'its source is gone' | 'no longer entitled' | 'its rule changed' }
  | { op: 'forget'; target: string }
  | { op: 'rmdir'; dir: string; ino: number; dev: number; instance: string }
  | { op: 'forget-dir'; dir: string };

export type LinkProblemCode = 'link-source-refused' | 'link-target-occupied' | 'link-parent-refused' | 'link-dir-overfull';

export interface LinkProblem {
  code: LinkProblemCode;
  target: string;
  instance: string;
  detail: string;
}

export interface LinkExpandInput {
  rules: readonly LinkRule[];
  /** The instances a rule entitles in this rundir. */
  entitled: (rule: LinkRule) => readonly string[];
  /** The names in a rundir-relative directory; null when it is absent or not safe to read. */
  list: (dir: string) => readonly string[] | null;
  /** Whether the entry at a rundir-relative path is a link rundird made (recorded, same inode). */
  ours: (path: string) => boolean;
}

export interface Expansion {
  candidates: LinkCandidate[];
  /** Directories whose entries decide links, with their ancestors ('' = the rundir): to watch. */
  dirs: Set<string>;
}

interface SourcePattern {
  rule: LinkRule;
  instance: string;
  dir: string;
  glob: RegExp;
}

const isGlob = (s: string) => /[*?]/.test(s);

/** Adds a rundir-relative directory and all its ancestors. */
function addWithAncestors(dirs: Set<string>, dir: string): void {
  for (let d = dir; d !== ''; d = parentOf(d)) {
    if (dirs.has(d)) return;
    dirs.add(d);
  }
  dirs.add('');
}

/**
 * The links the rules want: from every real source (an entry that is not a link of rundird's),
 * then along chains (a wanted target that another rule's source matches), never back onto a
 * path already in the chain. Bounded by the number of rules (the config refuses rule cycles
 * that would grow without end, see checkRuleGraph).
 */
export function expandLinks(input: LinkExpandInput): Expansion {
  const dirs = new Set<string>();
  const byDir = new Map<string, SourcePattern[]>();
  for (const rule of input.rules) {
    for (const instance of input.entitled(rule)) {
      const src = expandRulePath(rule.source, instance);
      const dir = parentOf(src);
      const p: SourcePattern = { rule, instance, dir, glob: globToRegExp(posix.basename(src)) };
      let l = byDir.get(dir);
      if (!l) byDir.set(dir, (l = []));
      l.push(p);
      addWithAncestors(dirs, dir);
      // The target's directory is watched whether or not a source is there now: a watch armed
      // and dropped as a server restarts would cost a directory scan each time.
      addWithAncestors(dirs, parentOf(expandRulePath(rule.target, instance, 'x')));
    }
  }
  const candidates: LinkCandidate[] = [];
  const wanted = new Set<string>();
  type Step = { c: LinkCandidate; chain: string[] };
  const frontier: Step[] = [];
  const want = (p: SourcePattern, name: string, source: string, via: string | null, chain: string[]) => {
    const target = expandRulePath(p.rule.target, p.instance, name);
    if (chain.includes(target) || wanted.has(target)) return; // back where it started, or wanted already
    wanted.add(target);
    const c: LinkCandidate = { rule: p.rule.name, instance: p.instance, source, target, kind: p.rule.kind, exdev: p.rule.exdev, via };
    candidates.push(c);
    addWithAncestors(dirs, parentOf(target));
    frontier.push({ c, chain: [...chain, target] });
  };
  // Roots: the real sources.
  for (const [dir, pats] of byDir) {
    const names = input.list(dir);
    if (!names) continue;
    for (const name of names) {
      if (name.startsWith(TEMP_PREFIX)) continue;
      const path = dir ? `${dir}/${name}` : name;
      let ours: boolean | null = null;
      for (const p of pats) {
        if (!p.glob.test(name)) continue;
        ours ??= input.ours(path);
        if (ours) break; // a link of rundird's is never a source of its own
        want(p, name, path, null, [path]);
      }
    }
  }
  // Chains: a wanted target is, for the rules whose source it matches, the real source again.
  const limit = input.rules.length;
  for (let i = 0; i < frontier.length; i++) {
    const { c, chain } = frontier[i]!;
    if (chain.length > limit + 1) continue;
    const name = posix.basename(c.target);
    for (const p of byDir.get(parentOf(c.target)) ?? []) {
      if (p.glob.test(name)) want(p, name, c.source, c.target, chain);
    }
  }
  return { candidates, dirs };
}

/** Names of rules, for a config error. */
export interface RuleCycle {
  rules: string[];
}

/**
 * The rule graph, checked when the config is loaded: a chain that comes back to the path it
 * started from is harmless (the round trip lands on the real source, which is skipped), but a
 * chain that reaches a rule again on a new path would grow without end. Checked on sample
 * paths, with two sample instances so that chains across instances are seen.
 */
export function checkRuleGraph(rules: readonly LinkRule[]): RuleCycle | null {
  const instances = ['a1', 'b2'];
  for (const rule of rules) {
    for (const instance of instances) {
      const src = expandRulePath(rule.source, instance);
      const name = posix.basename(src).replace(/[*?]/g, 'q');
      const root = parentOf(src) ? `${parentOf(src)}/${name}` : name;
      // Depth-first over the chains from this sample source.
      const stack: { path: string; chain: string[]; used: string[] }[] = [{ path: root, chain: [root], used: [] }];
      while (stack.length) {
        const { path, chain, used } = stack.pop()!;
        for (const r of rules) {
          for (const inst of instances) {
            const s = expandRulePath(r.source, inst);
            if (parentOf(s) !== parentOf(path) || !globToRegExp(posix.basename(s)).test(posix.basename(path))) continue;
            const t = expandRulePath(r.target, inst, posix.basename(path));
            if (chain.includes(t)) continue;
            const key = `${r.name}/${inst}`;
            if (used.includes(key)) return { rules: [...new Set([...used, key].map((k) => k.split('/')[0]!))] };
            if (chain.length > 2 * rules.length + 2) return { rules: [...new Set(used.map((k) => k.split('/')[0]!))] };
            stack.push({ path: t, chain: [...chain, t], used: [...used, key] });
          }
        }
      }
    }
  }
  return null;
}

export interface LinkPlanInput {
  uid: number;
  candidates: readonly LinkCandidate[];
  /** lstat (null = absent) by rundir-relative path: sources, targets, their parents, and everything recorded. */
  stat: ReadonlyMap<string, NodeStat | null>;
  links: ReadonlyMap<string, LinkRecord>;
  dirs: ReadonlyMap<string, DirRecord>;
  /** Private dirs the same plan makes first (entry name → owner and group): links may go into them. */
  privdirsMade: ReadonlyMap<string, { owner: number; group: number }>;
}

const LINKABLE = new Set(['socket', 'file']);

export function planLinks(input: LinkPlanInput): { actions: LinkAction[]; problems: LinkProblem[] } {
  const { uid, stat, links } = input;
  const actions: LinkAction[] = [];
  const problems: LinkProblem[] = [];
  const kept = new Set<string>();
  /** Directories a kept or planned link needs. */
  const needed = new Set<string>();
  const seen = new Set<string>();
  const st = (p: string) => stat.get(p) ?? null;
  for (const c of input.candidates) {
    if (seen.has(c.target)) continue; // two rules for one target: the first wins
    seen.add(c.target);
    const src = st(c.source);
    if (!src) continue;
    const refuse = (code: LinkProblemCode, detail: string) => problems.push({ code, target: c.target, instance: c.instance, detail });
    if (!LINKABLE.has(src.kind)) {
      refuse('link-source-refused', `${c.source} is a ${src.kind}: only sockets and regular files are linked`);
      continue;
    }
    if (src.uid !== uid) {
      refuse('link-source-refused', `${c.source} belongs to UID ${src.uid}, not ${uid}: never linked across users`);
      continue;
    }
    // Nor out of a directory that is not the user's (a private dir root made, say) or not a
    // directory: applying would refuse to open it, and a plan that is always refused is planned
    // again at every sync.
    const unsafe = ancestorsOf(c.source).find((d) => {
      const n = st(d);
      return n !== null && (n.kind !== 'dir' || n.uid !== uid);
    });
    if (unsafe !== undefined) {
      const n = st(unsafe)!;
      refuse('link-source-refused', `${c.source}: ${unsafe} ${n.kind !== 'dir' ? `is a ${n.kind}, not a directory` : `belongs to UID ${n.uid}, not ${uid}`}; not linking out of it`);
      continue;
    }
    // The directories above the target: the first must exist (the private dir, or the rundir
    // itself; one this plan makes counts); deeper ones are made with the first's owner and mode 0700.
    const parts = c.target.split('/');
    const mkdirs: string[] = [];
    let owner = uid;
    let group = uid;
    let blocked: string | null = null;
    let wait = false;
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const d = st(dir);
      if (d === null) {
        const made = i === 1 ? input.privdirsMade.get(dir) : undefined;
        if (made) {
          owner = made.owner;
          group = made.group;
        } else if (i === 1) wait = true; // not a private dir this plan makes: nothing to link into
        else mkdirs.push(dir);
        continue;
      }
      if (d.kind !== 'dir') blocked = `${dir} is a ${d.kind}, not a directory`;
      else if (d.uid !== uid) blocked = `${dir} belongs to UID ${d.uid}, not ${uid}`;
      if (blocked) break;
      if (i === 1) {
        owner = d.uid;
        group = d.gid;
      }
    }
    if (wait) continue;
    if (blocked) {
      refuse('link-parent-refused', `${c.target}: ${blocked}; not linking through it`);
      continue;
    }
    for (let i = 1; i < parts.length; i++) needed.add(parts.slice(0, i).join('/'));
    const tgt = st(c.target);
    const rec = links.get(c.target);
    const ours = tgt !== null && rec !== undefined && rec.ino === tgt.ino;
    const base = { op: 'link' as const, rule: c.rule, instance: c.instance, source: c.source, target: c.target, kind: c.kind, exdev: c.exdev, sourceIno: src.ino, mkdirs, owner, group };
    if (tgt === null) {
      actions.push({ ...base, replace: false });
      kept.add(c.target);
      continue;
    }
    if (!ours) {
      // Already the very same inode, but not made by rundird (a helper script, a user's own
      // link): satisfied as it is, never taken over and never removed.
      if (tgt.ino === src.ino && tgt.kind === src.kind) continue;
      refuse('link-target-occupied', `${c.target} is there already (a ${tgt.kind} rundird did not make); left alone`);
      continue;
    }
    kept.add(c.target);
    // A hard link goes stale when the server makes its socket anew (new inode); a symlink when
    // the chain now resolves to another source.
    if ((rec.kind === 'hard' && tgt.ino !== src.ino) || rec.source !== c.source) actions.push({ ...base, replace: true });
  }
  for (const [target, rec] of links) {
    if (kept.has(target)) continue;
    const tgt = st(target);
    if (tgt === null || tgt.ino !== rec.ino) {
      actions.push({ op: 'forget', target }); // gone, or replaced by someone else: not ours any more
      continue;
    }
    const src = st(rec.source);
    const why = src === null || (rec.kind === 'hard' && src.ino !== rec.ino) ? 'its source is gone' : seen.has(target) ? 'its rule changed' : 'no longer entitled';
    actions.push({ op: 'unlink', target, ino: rec.ino, why });
  }
  // Directories rundird made that no link needs any more: deepest first, after the unlinks.
  for (const [dir, rec] of [...input.dirs].sort((a, b) => b[0].length - a[0].length)) {
    if (needed.has(dir)) continue;
    const d = st(dir);
    if (d === null || d.kind !== 'dir' || d.ino !== rec.ino || d.dev !== rec.dev) actions.push({ op: 'forget-dir', dir });
    else actions.push({ op: 'rmdir', dir, ino: rec.ino, dev: rec.dev, instance: rec.instance });
  }
  return { actions, problems };
}

/** The directories above a rundir-relative path, outermost first ('' and the rundir itself left out). */
function ancestorsOf(rel: string): string[] {
  const parts = rel.split('/');
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/** A symlink's value from the target's directory to the source, both rundir-relative. */
export function symlinkValue(source: string, target: string): string {
  return posix.relative(posix.dirname(target), source);
}

// ---- what a rundir holds for the rules, read through a RundirIO ----------------------------

export interface LinkWorld {
  candidates: LinkCandidate[];
  /** lstat (null = absent) of every source, target and parent directory, and of everything recorded. */
  stat: Map<string, NodeStat | null>;
  /** Directories (rundir-relative, '' = the rundir) whose entries decide the links: to watch. */
  dirs: Set<string>;
  /**
   * A directory the rules list that holds more than the entry limit (or more candidates than
   * it): the links of this rundir are then left exactly as they are, and this is reported.
   */
  overfull: string | null;
}

/** Reads what the rules need in one rundir, for the instances entitled to each rule. */
export function readLinkWorld(
  io: RundirIO,
  dev: number,
  rules: readonly LinkRule[],
  entitled: (rule: LinkRule) => readonly string[],
  links: ReadonlyMap<string, LinkRecord>,
  dirs: ReadonlyMap<string, DirRecord>,
  maxEntries: number,
): LinkWorld {
  const stat = new Map<string, NodeStat | null>();
  const lstatRel = (rel: string): NodeStat | null => {
    if (stat.has(rel)) return stat.get(rel)!;
    const st = io.lstat(rel);
    stat.set(rel, st);
    return st;
  };
  // A directory is read only if every component is a real directory on the rundir's own
  // filesystem: never through a planted symlink, never into a mount a user put there.
  const safeDir = (rel: string): boolean => {
    if (rel === '') return true;
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const st = lstatRel(parts.slice(0, i).join('/'));
      if (st?.kind !== 'dir' || st.dev !== dev) return false;
    }
    return true;
  };
  let overfull: string | null = null;
  const listings = new Map<string, string[] | null>();
  const list = (dir: string): string[] | null => {
    if (!listings.has(dir)) {
      const l = safeDir(dir) ? io.readdir(dir) : null;
      if (l === OVERFULL) overfull ??= dir;
      listings.set(dir, l === OVERFULL ? null : l);
    }
    return listings.get(dir)!;
  };
  const ours = (path: string): boolean => {
    const rec = links.get(path);
    return rec !== undefined && lstatRel(path)?.ino === rec.ino;
  };
  const x = expandLinks({ rules, entitled, list, ours });
  // Nothing more is read of a rundir that holds too much: its links stay as they are.
  if (overfull === null && x.candidates.length > maxEntries) overfull = '';
  if (overfull !== null) return { candidates: [], stat, dirs: x.dirs, overfull };
  for (const c of x.candidates) {
    lstatRel(c.source);
    // Parents of the target: the private dir must be there; deeper ones may be made.
    const parts = c.target.split('/');
    for (let i = 1; i <= parts.length; i++) lstatRel(parts.slice(0, i).join('/'));
  }
  // What rundird made: read only where the way there is still safe (else it is not found,
  // and so never removed).
  const lstatSafe = (rel: string) => (safeDir(parentOf(rel)) ? lstatRel(rel) : stat.set(rel, stat.get(rel) ?? null));
  for (const [target, rec] of links) {
    lstatSafe(target);
    lstatSafe(rec.source);
  }
  for (const dir of dirs.keys()) lstatSafe(dir);
  // The directories to watch, as they are now (a watch on another inode is armed anew).
  for (const d of x.dirs) if (d !== '' && safeDir(parentOf(d))) lstatRel(d);
  return { candidates: x.candidates, stat, dirs: x.dirs, overfull: null };
}
