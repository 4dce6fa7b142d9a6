// Snap instance names as snapd defines them: NAME (2–40 chars) or NAME_KEY (key [a-z0-9]{1,10}).
// A name is lowercase letters, digits and single inner hyphens, with at least one letter.

const KEY_RE = /^[a-z0-9]{1,10}$/;

/**
 * A snap name, checked in one pass: lowercase letters, digits and single inner hyphens, with
 * at least one letter. (The pattern this replaced nested its quantifiers and took exponential
 * time on names such as 40 digits; names come from snapd, the snap root and the config.)
 */
function isSnapName(s: string): boolean {
  let letter = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 97 && c <= 122) letter = true;
    else if (c === 45) {
      if (i === 0 || i === s.length - 1 || s.charCodeAt(i - 1) === 45) return false;
    } else if (!(c >= 48 && c <= 57)) return false;
  }
  return letter;
}

export interface InstanceName {
  instance: string;
  snap: string;
  key: string | null;
}

export function parseInstanceName(s: string): InstanceName | null {
  const parts = s.split('_');
  if (parts.length > 2) return null;
  const [snap, key] = parts as [string, string | undefined];
  if (snap.length < 2 || snap.length > 40 || !isSnapName(snap)) return null;
  if (key !== undefined && !KEY_RE.test(key)) return null;
  return { instance: s, snap, key: key ?? null };
}

export const PRIVATE_DIR_PREFIX = 'snap.';

/** Each name made once and shared: every UID's records and reads hold these same strings (at 2,000 rundirs, 40,000 copies of 20 names were 1.6 MiB). */
const dirNames = new Map<string, string>();
/** Instances are the snaps installed, a few hundred at most; past this the cache starts again. */
const DIR_NAMES_MAX = 4096;

export function privateDirName(instance: string): string {
  let name = dirNames.get(instance);
  if (name === undefined) {
    if (dirNames.size >= DIR_NAMES_MAX) dirNames.clear();
    name = PRIVATE_DIR_PREFIX + instance;
    dirNames.set(instance, name);
  }
  return name;
}

/** The instance a `snap.INSTANCE` entry belongs to, or null if the name is not one. */
export function instanceOfPrivateDir(entry: string): string | null {
  if (!entry.startsWith(PRIVATE_DIR_PREFIX)) return null;
  const inst = entry.slice(PRIVATE_DIR_PREFIX.length);
  return parseInstanceName(inst) ? inst : null;
}

const compiled = new Map<string, RegExp>();

/**
 * Globs over instance names: `*` and `?` only; instance names have no other special characters.
 * Memoized: the globs come from the config and are matched on every pass.
 */
export function globToRegExp(glob: string): RegExp {
  const hit = compiled.get(glob);
  if (hit) return hit;
  const body = glob
    .split('')
    .map((c) => (c === '*' ? '[^/]*' : c === '?' ? '[^/]' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  const re = new RegExp(`^${body}$`);
  if (compiled.size < 4096) compiled.set(glob, re);
  return re;
}

export function matchesAny(name: string, globs: readonly RegExp[]): boolean {
  return globs.some((g) => g.test(name));
}
