// Snap instance names as snapd defines them: NAME (2–40 chars) or NAME_KEY (key [a-z0-9]{1,10}).
// A name is lowercase letters, digits and single inner hyphens, with at least one letter.

const NAME_RE = /^(?:[a-z0-9]+-?)*[a-z](?:-?[a-z0-9])*$/;
const KEY_RE = /^[a-z0-9]{1,10}$/;

export interface InstanceName {
  instance: string;
  snap: string;
  key: string | null;
}

export function parseInstanceName(s: string): InstanceName | null {
  const parts = s.split('_');
  if (parts.length > 2) return null;
  const [snap, key] = parts as [string, string | undefined];
  if (snap.length < 2 || snap.length > 40 || !NAME_RE.test(snap)) return null;
  if (key !== undefined && !KEY_RE.test(key)) return null;
  return { instance: s, snap, key: key ?? null };
}

export const PRIVATE_DIR_PREFIX = 'snap.';

export function privateDirName(instance: string): string {
  return PRIVATE_DIR_PREFIX + instance;
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
