// The status API's socket path: its directory made if missing (0755, as RuntimeDirectory= would),
// a stale socket of an earlier run removed, and nothing else ever replaced: a file, a directory
// or a live socket (another rundird) at the path is an error, not something to delete.
import { chmodSync, lchownSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import type { Server } from 'node:http';
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

/**
 * Binds the server to `path`: mode 0600, or 0660 with group `gid`. The mode comes from the
 * umask at bind, so the socket never exists wider than intended, not even for a moment; the
 * group is set with lchown, which never follows a link.
 */
export async function listenApiSocket(server: Server, path: string, gid: number | null): Promise<void> {
  const old = process.umask(gid === null ? 0o177 : 0o117);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(old);
  }
  if (gid !== null) lchownSync(path, process.geteuid?.() ?? 0, gid);
}

/**
 * The socket systemd made and passed (rundird.socket): served as it is; with an api-group, the
 * socket file (in root's own /run/rundird, checked to be a socket, never followed) is given that
 * group and 0660, as api-group asks.
 */
export async function listenInheritedSocket(server: Server, fd: number, path: string, gid: number | null): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  if (gid === null) return;
  const st = lstatSync(path);
  if (!st.isSocket()) throw new ApiSocketError(`${path} is not the socket systemd passed`);
  lchownSync(path, st.uid, gid);
  chmodSync(path, 0o660);
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
