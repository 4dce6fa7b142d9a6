// Link rules and what a rundir holds for them: rules expanded per entitled instance, source
// globs listed, and an lstat of every source, target and directory in between. Read-only.
import { readdirSync } from 'node:fs';
import { posix } from 'node:path';
import { globToRegExp } from './instances.js';
import { lstatOrNull } from './read.js';
import type { NodeStat } from './types.js';

export type LinkKind = 'hard' | 'symlink';

export interface LinkRule {
  name: string;
  /** Relative to the rundir; may hold {instance}; its last component may be a glob (* ?). */
  source: string;
  /** Relative to the rundir; {instance} and {name} (the matched source's last component). */
  target: string;
  kind: LinkKind;
  /** A hard link across filesystems (EXDEV): make a symlink instead, or only warn. */
  exdev: 'symlink' | 'warn';
  /** Who gets it: instances whose named plug (or slot) is connected, or instances by name or glob. */
  to: { plugs: string[]; slots: string[]; instances: string[] };
}

/** Shipped defaults: docs/links.md. */
export const DEFAULT_LINK_RULES: LinkRule[] = [
  { name: 'wayland', source: 'wayland-*', target: 'snap.{instance}/{name}', kind: 'hard', exdev: 'symlink', to: { plugs: ['wayland'], slots: [], instances: [] } },
  { name: 'session-bus', source: 'bus', target: 'snap.{instance}/bus', kind: 'hard', exdev: 'warn', to: { plugs: ['desktop'], slots: [], instances: [] } },
  { name: 'pulseaudio', source: 'pulse/native', target: 'snap.{instance}/pulse/native', kind: 'hard', exdev: 'warn', to: { plugs: ['audio-playback', 'pulseaudio'], slots: [], instances: [] } },
  { name: 'dconf', source: 'dconf/user', target: 'snap.{instance}/dconf/user', kind: 'hard', exdev: 'warn', to: { plugs: ['gsettings'], slots: [], instances: [] } },
  { name: 'wayland-server', source: 'snap.{instance}/wayland-*', target: '{name}', kind: 'hard', exdev: 'warn', to: { plugs: [], slots: ['wayland'], instances: [] } },
];

export interface LinkCandidate {
  rule: string;
  instance: string;
  source: string;
  target: string;
  kind: LinkKind;
  exdev: 'symlink' | 'warn';
}

export interface LinkWorld {
  candidates: LinkCandidate[];
  /** lstat (null = absent) of every source, target and parent directory, by rundir-relative path. */
  stat: Map<string, NodeStat | null>;
  /** Directories (rundir-relative, '' = the rundir) whose entries decide the links: to watch. */
  dirs: Set<string>;
}

/** A rule's relative path is plain: no absolute path, no '..', no empty or '.' component. */
export function checkRulePath(p: string): string | null {
  if (p.startsWith('/')) return 'must be relative to the rundir';
  const parts = p.split('/');
  if (parts.some((c) => c === '' || c === '.' || c === '..')) return 'no empty, "." or ".." components';
  if (parts.slice(0, -1).some((c) => /[*?]/.test(c))) return 'a glob only in the last component';
  return null;
}

/** The directory a rundir-relative path is in ('' for the rundir itself). */
export function parentOf(rel: string): string {
  const d = posix.dirname(rel);
  return d === '.' ? '' : d;
}

const expand = (p: string, instance: string, name = '') => p.replaceAll('{instance}', instance).replaceAll('{name}', name);

function lstatRel(rundir: string, rel: string, stat: Map<string, NodeStat | null>): NodeStat | null {
  if (stat.has(rel)) return stat.get(rel)!;
  let st: NodeStat | null = null;
  try {
    st = lstatOrNull(posix.join(rundir, rel));
  } catch {
    st = null; // unreadable: nothing usable there
  }
  stat.set(rel, st);
  return st;
}

/** Every directory component of a relative path must be a real directory (never a symlink). */
function dirsOk(rundir: string, rel: string, stat: Map<string, NodeStat | null>): boolean {
  const parts = rel.split('/');
  for (let i = 1; i < parts.length; i++) {
    if (lstatRel(rundir, parts.slice(0, i).join('/'), stat)?.kind !== 'dir') return false;
  }
  return true;
}

/** Reads what the rules need in one rundir, for the instances entitled to each rule. */
export function readLinkWorld(rundir: string, rules: LinkRule[], entitled: (rule: LinkRule) => string[]): LinkWorld {
  const stat = new Map<string, NodeStat | null>();
  const candidates: LinkCandidate[] = [];
  const dirs = new Set<string>();
  const listings = new Map<string, string[]>();
  for (const rule of rules) {
    for (const instance of entitled(rule)) {
      const src = expand(rule.source, instance);
      const dir = parentOf(src);
      const glob = posix.basename(src);
      dirs.add(dir);
      // The target's directory is watched whether or not a source is there now: a watch armed
      // and dropped as a server restarts would cost a directory scan each time.
      dirs.add(parentOf(expand(rule.target, instance, 'x')));
      let names: string[] = [];
      if (/[*?]/.test(glob)) {
        if (dir === '' || dirsOk(rundir, `${dir}/x`, stat)) {
          if (!listings.has(dir)) {
            try {
              listings.set(dir, readdirSync(posix.join(rundir, dir)));
            } catch {
              listings.set(dir, []);
            }
          }
          const re = globToRegExp(glob);
          names = listings.get(dir)!.filter((n) => re.test(n) && !n.startsWith('.rundird-'));
        }
      } else names = [glob];
      for (const name of names) {
        const source = dir ? `${dir}/${name}` : name;
        const target = expand(rule.target, instance, name);
        if (target === source) continue;
        if (!dirsOk(rundir, source, stat)) continue;
        lstatRel(rundir, source, stat);
        // Parents of the target: the private dir must be there; deeper ones may be made.
        const tparts = target.split('/');
        for (let i = 1; i <= tparts.length; i++) lstatRel(rundir, tparts.slice(0, i).join('/'), stat);
        dirs.add(parentOf(target));
        candidates.push({ rule: rule.name, instance, source, target, kind: rule.kind, exdev: rule.exdev });
      }
    }
  }
  return { candidates, stat, dirs };
}
