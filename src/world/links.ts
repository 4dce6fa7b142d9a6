// Link rules (the shared vocabulary: shipped rules, rule paths, temporary names) and the reader
// of one rundir for them (RundirIO: lstat and readdir by rundir-relative path, through the
// sync's walker, never into a mount). Read-only. What the rules want of a rundir, read through
// this reader, is reconcile/links.ts's readLinkWorld.
import { posix } from 'node:path';
import { MOUNT_POINT, type OVERFULL, judgeMountRoot, statAt, toNodeStat, underMount, type MountSnapshot, type RundirWalker } from './read.js';
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
  /**
   * Who gets it: instances with a connected plug (or slot) of one of these interfaces — the
   * interface, never the plug's name, which its publisher picks — or instances by name or glob.
   */
  to: { plugs: string[]; slots: string[]; instances: string[] };
}

/** Shipped defaults: docs/links.md. */
export const DEFAULT_LINK_RULES: LinkRule[] = [
  { name: 'wayland', source: 'wayland-*', target: 'snap.{instance}/{name}', kind: 'hard', exdev: 'symlink', to: { plugs: ['wayland'], slots: [], instances: [] } },
  { name: 'session-bus', source: 'bus', target: 'snap.{instance}/bus', kind: 'hard', exdev: 'warn', to: { plugs: ['desktop'], slots: [], instances: [] } },
  { name: 'pulseaudio', source: 'pulse/native', target: 'snap.{instance}/pulse/native', kind: 'hard', exdev: 'warn', to: { plugs: ['audio-playback', 'pulseaudio'], slots: [], instances: [] } },
  { name: 'dconf', source: 'dconf/user', target: 'snap.{instance}/dconf/user', kind: 'hard', exdev: 'warn', to: { plugs: ['gsettings'], slots: [], instances: [] } },
  { name: 'wayland-server', source: 'snap.{instance}/wayland-*', target: '{name}', kind: 'hard', exdev: 'warn', to: { plugs: [], slots: ['wayland'], instances: [] } },
  // PipeWire's native socket: the pipewire plug only (its API records too; audio-playback alone
  // must not get it). snapd's pipewire rules allow /run/user/N/pipewire-[0-9] at its real path.
  { name: 'pipewire', source: 'pipewire-?', target: 'snap.{instance}/{name}', kind: 'hard', exdev: 'warn', to: { plugs: ['pipewire'], slots: [], instances: [] } },
  // A PulseAudio (or pipewire-pulse) server snap binds in its own XDG_RUNTIME_DIR: linked out to
  // pulse/native, from where the pulseaudio rule takes it on into its clients' private dirs.
  { name: 'pulseaudio-server', source: 'snap.{instance}/pulse/native', target: 'pulse/native', kind: 'hard', exdev: 'warn', to: { plugs: [], slots: ['audio-playback', 'pulseaudio'], instances: [] } },
  // The accessibility bus (at-spi2's launcher binds at-spi/bus_N); desktop-legacy allows it.
  { name: 'at-spi', source: 'at-spi/bus*', target: 'snap.{instance}/at-spi/{name}', kind: 'hard', exdev: 'warn', to: { plugs: ['desktop-legacy'], slots: [], instances: [] } },
];

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

/** Temporary names of links being made: `.rundird-` and 16 random hex digits; never a source. */
export const TEMP_PREFIX = '.rundird-';

/** A rule path for one instance, and for one matched source name. */
export const expandRulePath = (p: string, instance: string, name = '') => p.replaceAll('{instance}', instance).replaceAll('{name}', name);


/** How the link reader sees one rundir: lstat and readdir by rundir-relative path. */
export interface RundirIO {
  lstat(rel: string): NodeStat | null;
  /** null: absent or unreadable; OVERFULL: more entries than the limit. */
  readdir(rel: string): string[] | null | typeof OVERFULL;
}

/**
 * The real rundir at `rundir`, through its walker's descriptors: lstat never follows a
 * component, readdir errors are "nothing"; nothing on or below a mount point (the table's, or
 * one statx finds that the table does not know as local) is read.
 */
export function rundirIO(walker: RundirWalker, rundir: string, mounts: MountSnapshot, maxEntries: number): RundirIO {
  return {
    lstat: (rel) => {
      if (underMount(mounts, rundir, rel)) return MOUNT_POINT;
      const dir = walker.dir(parentOf(rel));
      if (dir === null) return null;
      try {
        const st = statAt(dir, posix.basename(rel));
        if (st === null) return null;
        if (!st.mountRoot) return toNodeStat(st);
        return judgeMountRoot(mounts, posix.join(rundir, rel), st) === 'local' ? { ...toNodeStat(st), mountRoot: true } : MOUNT_POINT;
      } catch {
        return null; // unreadable: nothing usable there
      }
    },
    readdir: (rel) => (underMount(mounts, rundir, rel) ? null : walker.list(rel, maxEntries)),
  };
}

