// A receiving datagram socket that stands in for journald's /run/systemd/journal/socket and
// decodes the native protocol (a datagram, or a sealed memfd passed with it, as journald takes
// it), so that tests assert the exact fields of each record.
import { fstatSync, readSync } from 'node:fs';
import { join } from 'node:path';
import * as libc from '../../src/sys/libc.js';
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

/** A datagram socket bound at `path`, read every few milliseconds while `reading` (tests only). */
export class DatagramReceiver {
  readonly fd: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly buf = Buffer.alloc(1 << 20);
  private closed = false;
  /** Seals of each memfd received (journald refuses one without them). */
  readonly seals: number[] = [];

  constructor(
    readonly path: string,
    private readonly onMessage: (m: Buffer) => void,
    reading = true,
  ) {
    this.fd = libc.dgramSocket();
    libc.bindUnix(this.fd, path);
    if (reading) this.resume();
  }

  /** Reads what is queued now; a passed memfd is read whole from its start. */
  poll(): void {
    for (let r = libc.recvDatagram(this.fd, this.buf); r !== null; r = libc.recvDatagram(this.fd, this.buf)) {
      if (r.fd !== null) {
        try {
          this.seals.push(libc.getSeals(r.fd));
          const data = Buffer.alloc(fstatSync(r.fd).size);
          readSync(r.fd, data, 0, data.length, 0);
          this.onMessage(data);
        } finally {
          libc.close(r.fd);
        }
      } else this.onMessage(Buffer.from(this.buf.subarray(0, r.length)));
    }
  }

  /** Stops reading: the socket's queue fills, and senders get EAGAIN (a journal that stalls). */
  pause(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  resume(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => this.poll(), 5);
  }

  /** Idempotent: closing one fd twice would close whatever took its number. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pause();
    libc.close(this.fd);
  }
}

export class JournalReceiver {
  readonly entries: JournalEntry[] = [];
  readonly path: string;
  readonly sock: DatagramReceiver;

  constructor(dir: string, reading = true) {
    this.path = join(dir, 'journal.sock');
    this.sock = new DatagramReceiver(this.path, (m) => this.entries.push(decodeEntry(m)), reading);
  }

  byEvent(event: string): JournalEntry[] {
    return this.entries.filter((e) => e.RUNDIRD_EVENT === event);
  }

  async waitFor(event: string, pred: (e: JournalEntry) => boolean = () => true, timeoutMs = 10_000): Promise<JournalEntry> {
    await waitFor(() => this.byEvent(event).some(pred), `journal record ${event}`, timeoutMs);
    return this.byEvent(event).find(pred)!;
  }

  close(): void {
    this.sock.close();
  }
}
