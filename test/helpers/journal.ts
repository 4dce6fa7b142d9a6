// A receiving datagram socket that stands in for journald's /run/systemd/journal/socket and
// decodes the native protocol, so that tests assert the exact fields of each record.
import dgram from 'unix-dgram';
import { join } from 'node:path';
import { waitFor } from './sandbox.js';

export type JournalEntry = Record<string, string>;

/** Decodes one datagram: `NAME=value\n`, or `NAME\n` + 64-bit LE length + bytes + `\n`. */
export function decodeEntry(buf: Buffer): JournalEntry {
  const out: JournalEntry = {};
  let i = 0;
  while (i < buf.length) {
    const nl = buf.indexOf(10, i);
    if (nl < 0) throw new Error(`unterminated field at ${i}`);
    const line = buf.subarray(i, nl).toString('utf8');
    const eq = line.indexOf('=');
    if (eq >= 0) {
      out[line.slice(0, eq)] = line.slice(eq + 1);
      i = nl + 1;
      continue;
    }
    const len = Number(buf.readBigUInt64LE(nl + 1));
    out[line] = buf.subarray(nl + 9, nl + 9 + len).toString('utf8');
    if (buf[nl + 9 + len] !== 10) throw new Error(`field ${line}: no newline after ${len} bytes`);
    i = nl + 9 + len + 1;
  }
  return out;
}

export class JournalReceiver {
  readonly entries: JournalEntry[] = [];
  readonly path: string;
  private readonly sock: ReturnType<typeof dgram.createSocket>;

  constructor(dir: string) {
    this.path = join(dir, 'journal.sock');
    this.sock = dgram.createSocket('unix_dgram', (m: Buffer) => this.entries.push(decodeEntry(m)));
    (this.sock as unknown as { bind(p: string): void }).bind(this.path);
  }

  byEvent(event: string): JournalEntry[] {
    return this.entries.filter((e) => e.RUNDIRD_EVENT === event);
  }

  async waitFor(event: string, pred: (e: JournalEntry) => boolean = () => true, timeoutMs = 10_000): Promise<JournalEntry> {
    await waitFor(() => this.byEvent(event).some(pred), `journal record ${event}`, timeoutMs);
    return this.byEvent(event).find(pred)!;
  }

  private closed = false;

  /** Idempotent: unix-dgram closing one fd twice would close whatever took its number. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }
}
