// UID → user name, for commands in remedies (loginctl enable-linger NAME). Re-read when
// /etc/passwd changes; the UID itself when there is no entry (loginctl takes UIDs too).
import { readFileSync, statSync } from 'node:fs';

export class Passwd {
  private names = new Map<number, string>();
  private gids = new Map<number, number>();
  private mtime = -1;
  constructor(private readonly file = '/etc/passwd') {}

  private checked = 0;

  name(uid: number): string {
    this.refresh();
    return this.names.get(uid) ?? String(uid);
  }

  /** The UID's primary group; the UID itself when there is no entry (a user private group). */
  gid(uid: number): number {
    this.refresh();
    return this.gids.get(uid) ?? uid;
  }

  private refresh(): void {
    try {
      // At most one stat a second, however many names are asked for.
      const now = Date.now();
      if (now - this.checked < 1000 && this.mtime !== -1) return;
      this.checked = now;
      const m = statSync(this.file).mtimeMs;
      if (m !== this.mtime) {
        this.mtime = m;
        const text = readFileSync(this.file, 'utf8');
        this.names = parsePasswd(text);
        this.gids = parseGids(text);
      }
    } catch {
      // no passwd file: UIDs it is
    }
  }
}

export function parsePasswd(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || !/^\d+$/.test(f[2]!) || !/^[a-z_][a-z0-9_.-]*\$?$/i.test(f[0]!)) continue;
    const uid = Number(f[2]);
    if (!out.has(uid)) out.set(uid, f[0]!);
  }
  return out;
}

export function parseGids(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || !/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!)) continue;
    if (!out.has(Number(f[2]))) out.set(Number(f[2]), Number(f[3]));
  }
  return out;
}

/** A group name or GID → the GID, from /etc/group; null when there is no such group. */
export function groupId(nameOrGid: string, file = '/etc/group'): number | null {
  if (/^\d+$/.test(nameOrGid)) return Number(nameOrGid);
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === nameOrGid && /^\d+$/.test(f[2] ?? '')) return Number(f[2]);
    }
  } catch {
    // no group file
  }
  return null;
}
