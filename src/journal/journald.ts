// The journald destination behind pino: each JSON record becomes one datagram of journald's
// native protocol (systemd.journal-fields(7), "Native Journal Protocol"), so that MESSAGE_ID,
// RUNDIR_UID, UNIT, REMEDY … arrive as fields that journalctl can match on. unix-dgram supplies
// the datagram socket that Node lacks.
import { dgram } from './dgram.js';

export type JournalField = [name: string, value: string];

/** pino's field names → the journal fields the catalog and DESIGN.md name. */
const RENAMED: Record<string, string> = {
  msg: 'MESSAGE',
  uid: 'RUNDIR_UID',
  path: 'RUNDIR_PATH',
  instance: 'SNAP_INSTANCE',
  unit: 'UNIT',
  object_pid: 'OBJECT_PID',
  remedy: 'REMEDY',
  event: 'RUNDIRD_EVENT',
};
/** Kept as they are. */
const VERBATIM = new Set(['MESSAGE_ID', 'PRIORITY', 'SYSLOG_IDENTIFIER']);
/** Dropped: the journal has its own timestamp, and PRIORITY says the level. */
const DROPPED = new Set(['time', 'level', 'pid', 'hostname']);
/** Names with a meaning of their own in the journal: ours get a prefix instead. */
const RESERVED = new Set(['MESSAGE', 'MESSAGE_ID', 'PRIORITY', 'CODE_FILE', 'CODE_LINE', 'CODE_FUNC', 'ERRNO', 'INVOCATION_ID', 'USER_INVOCATION_ID', 'SYSLOG_FACILITY', 'SYSLOG_IDENTIFIER', 'SYSLOG_PID', 'SYSLOG_TIMESTAMP', 'SYSLOG_RAW', 'DOCUMENTATION', 'TID', 'UNIT', 'USER_UNIT', 'COREDUMP_UNIT', 'OBJECT_PID']);
const LEVEL_PRIORITY: Record<string, number> = { trace: 7, debug: 7, info: 6, warn: 4, error: 3, fatal: 2 };
/** Lists under these keys become one journal field per element (journalctl matches any of them). */
const REPEATED = new Set(['path', 'instance']);
/** A value longer than this is cut (journald refuses huge datagrams; nothing of ours is this long). */
const MAX_VALUE = 16 * 1024;

export function fieldName(key: string): string {
  if (RENAMED[key]) return RENAMED[key]!;
  if (VERBATIM.has(key)) return key;
  const up = key.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
  return RESERVED.has(up) || !/^[A-Z]/.test(up) ? `RUNDIRD_${up.replace(/^_+/, '')}` : up;
}

/** A pino record (parsed JSON) as journal fields. */
export function recordToFields(rec: Record<string, unknown>): JournalField[] {
  const out: JournalField[] = [];
  let priority: string | null = null;
  for (const [k, v] of Object.entries(rec)) {
    if (DROPPED.has(k) || v === undefined || v === null || v === '') continue;
    const name = fieldName(k);
    if (REPEATED.has(k) && Array.isArray(v)) {
      for (const x of v) if (x !== null && x !== undefined && typeof x !== 'object') out.push([name, String(x).slice(0, MAX_VALUE)]);
      continue;
    }
    let value = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
    if (value.length > MAX_VALUE) value = value.slice(0, MAX_VALUE) + '…';
    if (name === 'PRIORITY') {
      priority = value;
      continue;
    }
    out.push([name, value]);
  }
  const lvl = typeof rec.level === 'string' ? LEVEL_PRIORITY[rec.level] : undefined;
  out.unshift(['PRIORITY', priority ?? String(lvl ?? 6)]);
  // `journalctl -u UNIT` also shows root's records with OBJECT_SYSTEMD_UNIT=UNIT: a kiosk
  // integrator reading their own unit's log sees rundird's warnings about it.
  const unit = out.find(([n]) => n === 'UNIT');
  if (unit) out.push(['OBJECT_SYSTEMD_UNIT', unit[1]]);
  if (!out.some(([n]) => n === 'SYSLOG_IDENTIFIER')) out.push(['SYSLOG_IDENTIFIER', 'rundird']);
  if (!out.some(([n]) => n === 'MESSAGE')) out.push(['MESSAGE', '']);
  return out;
}

/** The native protocol: `NAME=value\n`, or for a value with a newline `NAME\n` + 64-bit LE length + bytes + `\n`. */
export function encodeEntry(fields: JournalField[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    if (!value.includes('\n')) {
      parts.push(Buffer.from(`${name}=${value}\n`, 'utf8'));
      continue;
    }
    const data = Buffer.from(value, 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(data.length));
    parts.push(Buffer.from(`${name}\n`, 'utf8'), len, data, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

/** One of pino's JSON lines, or null for anything else. */
function parseRecord(line: string): Record<string, unknown> | null {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export interface JournaldDestination {
  write(line: string): boolean;
  flushSync?(): void;
  close(): void;
}

const MAX_QUEUE = 2048;
const RETRY_MS = 5000;

/**
 * A pino destination for journald. While journald is congested records wait in a bounded queue
 * (the oldest dropped, and their number said once it drains); if the socket fails outright the
 * records go to `fallback` (stdout, which systemd also gives to the journal) so that none is lost,
 * and the socket is tried again every few seconds.
 */
export function journaldDestination(socketPath: string, fallback: (line: string) => void): JournaldDestination {
  const d = dgram();
  if (d === null) return streamDestination(fallback);
  const sock = d.createSocket('unix_dgram');
  const queue: Buffer[] = [];
  let dropped = 0;
  let broken: string | null = null;
  let brokenAt = 0;
  sock.on('error', (e: Error) => {
    broken = e.message;
    brokenAt = Date.now();
  });
  sock.on('writable', () => drain());
  const sendNow = (buf: Buffer): 'ok' | 'congested' | 'failed' => {
    let result: 'ok' | 'congested' | 'failed' = 'ok';
    sock.send(buf, 0, buf.length, socketPath, (err?: Error & { code?: unknown }) => {
      if (!err) return;
      if (err.message.includes('congestion')) result = 'congested';
      else {
        result = 'failed';
        broken = err.message;
        brokenAt = Date.now();
      }
    });
    return result;
  };
  const drain = () => {
    while (queue.length > 0) {
      const r = sendNow(queue[0]!);
      if (r === 'congested') return;
      queue.shift();
    }
    if (dropped > 0) {
      const n = dropped;
      dropped = 0;
      sendNow(encodeEntry([['PRIORITY', '4'], ['SYSLOG_IDENTIFIER', 'rundird'], ['MESSAGE', `journald was congested: ${n} log records were dropped`]]));
    }
  };
  return {
    write(line: string): boolean {
      const buf = encodeEntry(recordToFields(parseRecord(line) ?? { msg: line.trimEnd() }));
      // journald restarted (same socket path, a new socket): try it again now and then.
      if (broken !== null && Date.now() - brokenAt > RETRY_MS) broken = null;
      if (broken === null) {
        if (queue.length > 0) {
          queue.push(buf);
          if (queue.length > MAX_QUEUE) {
            queue.shift();
            dropped++;
          }
          return true;
        }
        const r = sendNow(buf);
        if (r === 'ok') return true;
        if (r === 'congested') {
          queue.push(buf);
          return true;
        }
      }
      fallback(line.endsWith('\n') ? line : line + '\n');
      return true;
    },
    close() {
      try {
        sock.close();
      } catch {
        // closed already
      }
    },
  };
}

const STREAM_FIELDS = ['event', 'MESSAGE_ID', 'uid', 'unit', 'instance', 'reason'];

/**
 * Without a datagram socket: the journal's stdout stream (systemd gives a service's stdout to
 * the journal), one line a record with its priority as a `<N>` prefix, which journald reads.
 * The fields cannot travel as fields there; the ones people search for follow the message,
 * so that `journalctl -u rundird -g MESSAGE_ID=…` still finds them.
 */
export function streamDestination(write: (line: string) => void): JournaldDestination {
  return {
    write(line: string): boolean {
      const rec = parseRecord(line);
      if (rec === null) {
        write(line.endsWith('\n') ? line : line + '\n');
        return true;
      }
      const fields = recordToFields(rec);
      const prio = fields.find(([n]) => n === 'PRIORITY')?.[1] ?? '6';
      const msg = String(rec.msg ?? '').replace(/\n/g, ' ');
      const extra = STREAM_FIELDS.filter((k) => rec[k] !== undefined && rec[k] !== null).map((k) => `${fieldName(k)}=${String(rec[k])}`);
      write(`<${prio}>${msg}${extra.length ? ` [${extra.join(' ')}]` : ''}\n`);
      return true;
    },
    close() {},
  };
}
