// The status API's socket path: its directory made if missing (0755, as RuntimeDirectory= would),
// a stale socket of an earlier run removed, and nothing else ever replaced: a file, a directory
// or a live socket (another rundird) at the path is an error, not something to delete.
import { lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';

export class ApiSocketError extends Error {}

function live(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function prepareApiSocket(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new ApiSocketError(`${path} exists and is not a socket; not touching it`);
  if (await live(path)) throw new ApiSocketError(`${path}: another process (a second rundird?) is listening on it`);
  unlinkSync(path);
}

/** Removes the socket at stop, only if it is still the one this process bound (same inode). */
export function removeApiSocket(path: string, ino: number): void {
  try {
    const st = lstatSync(path);
    if (st.isSocket() && st.ino === ino) unlinkSync(path);
  } catch {
    // gone already
  }
}
