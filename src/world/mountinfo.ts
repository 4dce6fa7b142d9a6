// Parser for /proc/PID/mountinfo (proc(5)). Paths are octal-escaped: \040 space, \011 tab,
// \012 newline, \134 backslash.

export interface Mount {
  id: number;
  parentId: number;
  majorMinor: string;
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
}

export function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export class MountInfoError extends Error {}

/** Parses one line; returns null for a blank line, throws MountInfoError on a malformed one. */
export function parseMountInfoLine(line: string): Mount | null {
  if (line.trim() === '') return null;
  const f = line.split(' ');
  const sep = f.indexOf('-', 6);
  if (f.length < 10 || sep < 0 || f.length < sep + 3) {
    throw new MountInfoError(`malformed mountinfo line: ${JSON.stringify(line.slice(0, 200))}`);
  }
  const id = Number(f[0]);
  const parentId = Number(f[1]);
  if (!Number.isInteger(id) || !Number.isInteger(parentId)) {
    throw new MountInfoError(`malformed mount id in line: ${JSON.stringify(line.slice(0, 200))}`);
  }
  return {
    id,
    parentId,
    majorMinor: f[2]!,
    root: unescapeMountPath(f[3]!),
    mountPoint: unescapeMountPath(f[4]!),
    options: f[5]!,
    fsType: f[sep + 1]!,
    source: unescapeMountPath(f[sep + 2]!),
    superOptions: f[sep + 3] ?? '',
  };
}

export interface MountTable {
  mounts: Mount[];
  /** Lines that could not be parsed; the rest of the table is still used. */
  errors: string[];
}

export function parseMountInfo(text: string): MountTable {
  const mounts: Mount[] = [];
  const errors: string[] = [];
  for (const line of text.split('\n')) {
    try {
      const m = parseMountInfoLine(line);
      if (m) mounts.push(m);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  return { mounts, errors };
}

/**
 * The mount visible at each mount point: when several are stacked on one path, the one that is
 * not the parent of another mount on the same path is on top.
 */
export function topMounts(table: MountTable): Map<string, Mount> {
  const byPoint = new Map<string, Mount[]>();
  for (const m of table.mounts) {
    const list = byPoint.get(m.mountPoint);
    if (list) list.push(m);
    else byPoint.set(m.mountPoint, [m]);
  }
  const top = new Map<string, Mount>();
  for (const [point, list] of byPoint) {
    if (list.length === 1) {
      top.set(point, list[0]!);
      continue;
    }
    const parents = new Set(list.map((m) => m.parentId));
    const uncovered = list.filter((m) => !parents.has(m.id));
    // Several uncovered ones should not happen; take the last listed, as the kernel lists in order.
    top.set(point, uncovered[uncovered.length - 1] ?? list[list.length - 1]!);
  }
  return top;
}

/**
 * Where `path` lives, as a mount table sees it: the superblock (its device numbers) and the path
 * within it. Two processes whose tables give the same place for the runtime root see the same
 * directory, whatever their mount namespaces (a sandboxed service gets copies of the host's
 * mounts, with the same superblocks); a container's own /run/user is another superblock, or
 * another path in one. Null when the table has no mount above the path.
 */
export function placeOf(top: ReadonlyMap<string, Mount>, path: string): string | null {
  for (let p = path; ; p = p.slice(0, Math.max(1, p.lastIndexOf('/')))) {
    const m = top.get(p);
    if (m) {
      const rest = path.slice(p === '/' ? 0 : p.length);
      return `${m.majorMinor} ${(m.root === '/' ? '' : m.root) + rest || '/'}`;
    }
    if (p === '/') return null;
  }
}
