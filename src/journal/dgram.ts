// Unix datagram sockets, for journald's native protocol and sd_notify. Node has none of its
// own; unix-dgram (a native addon) is an optional dependency: where it could not be built (no
// compiler, no Node headers, an arm board) npm leaves it out, and rundird falls back to what
// needs no datagram socket (the journal's stdout stream, systemd-notify). RUNDIRD_NO_NATIVE=1
// takes the fallbacks on purpose (the tests of them).
import { createRequire } from 'node:module';
import type { UnixDgramSocket } from 'unix-dgram';

type Dgram = { createSocket(type: 'unix_dgram', listener?: (msg: Buffer) => void): UnixDgramSocket };

let loaded: Dgram | null | undefined;
let why = '';

/** The datagram module, or null (then `dgramMissing()` says why). */
export function dgram(): Dgram | null {
  if (loaded !== undefined) return loaded;
  if (process.env.RUNDIRD_NO_NATIVE === '1') {
    why = 'RUNDIRD_NO_NATIVE=1';
    return (loaded = null);
  }
  try {
    loaded = createRequire(import.meta.url)('unix-dgram') as Dgram;
  } catch (e) {
    why = `unix-dgram is not installed (${(e as Error).message.split('\n')[0]})`;
    loaded = null;
  }
  return loaded;
}

export function dgramMissing(): string {
  return why;
}
