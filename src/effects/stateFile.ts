// The records file: written whole to an unguessable temporary name (O_EXCL, O_NOFOLLOW, 0600)
// in its own directory, then renamed over the old one, so that a reader (or a crash) never sees
// half a file and a planted link at the path is replaced, never followed. Read back with
// O_NOFOLLOW and a size bound; a bad file is renamed aside, never removed.
import * as fs from 'node:fs';
import { basename, dirname } from 'node:path';
import { openTrustedDir, readRegularFileAt, replaceFileAt, withFd } from './safefs.js';

export function writeStateFile(path: string, text: string): void {
  const dir = dirname(path);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  withFd(openTrustedDir(dir), (dfd) => replaceFileAt(dfd, basename(path), text));
}

/** The file's text, or null when there is none. Throws for anything else (a link, a FIFO, too large). */
export function readStateFile(path: string, maxBytes: number): string | null {
  let dfd: number;
  try {
    dfd = openTrustedDir(dirname(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  return withFd(dfd, (fd) => readRegularFileAt(fd, basename(path), maxBytes)?.toString('utf8') ?? null);
}

/** Replaces `name` in a trusted directory (node_exporter's textfile directory) whole: a reader never sees half of it. */
export function writeFileIn(dir: string, name: string, text: string): void {
  withFd(openTrustedDir(dir), (dfd) => replaceFileAt(dfd, name, text));
}

/** Moves a bad records file aside (kept for whoever wants to look), returning its new path. */
export function setAside(path: string): string {
  const to = `${path}.bad-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  fs.renameSync(path, to);
  return to;
}
