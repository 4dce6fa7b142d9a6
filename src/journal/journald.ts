// The journald destination behind pino: each JSON record becomes one datagram of journald's
// native protocol (systemd.journal-fields(7), "Native Journal Protocol"), so that MESSAGE_ID,
// RUNDIR_UID, UNIT, REMEDY … arrive as fields that journalctl can match on. The datagram
// socket Node lacks is libc's (src/sys/libc.ts); a record too large for one datagram goes as
// sd_journal_send sends it, in a sealed memfd passed with SCM_RIGHTS.
import * as libc from '../sys/libc.js';

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
  /** Records waiting, and dropped since the last notice (for status and the tests). */
  stats(): { queued: number; dropped: number; sent: number };
}

/** Records that wait while journald does not read (a burst, or journald restarting). */
export const MAX_QUEUE = 2048;
const RETRY_FIRST_MS = 10;
const RETRY_MAX_MS = 1000;

type Sent = 'ok' | 'again' | 'refused';

/**
 * A pino destination for journald. The socket never blocks: a journal that does not read
 * (EAGAIN) or is not there for a moment (restarting: ENOENT, ECONNREFUSED) is not a broken one.
 * Records then wait in a bounded queue, tried again with back-off (10 ms, doubling to 1 s; no
 * timer while nothing waits); past the bound the oldest are dropped, and their number is said
 * in a record of its own once the journal reads again. Nothing goes to stdout instead.
 */
export function journaldDestination(socketPath: string): JournaldDestination {
  const fd = libc.dgramSocket();
  const to = libc.sockaddrUn(socketPath);
  const queue: Buffer[] = [];
  let dropped = 0;
  let sent = 0;
  let timer: NodeJS.Timeout | null = null;
  let delay = RETRY_FIRST_MS;
  let closed = false;

  const sendLarge = (buf: Buffer): Sent => {
    const mfd = libc.sealedMemfd('journal-rundird', buf);
    try {
      libc.sendDescriptor(fd, mfd, to);
      return 'ok';
    } finally {
      libc.close(mfd);
    }
  };
  const sendOne = (buf: Buffer): Sent => {
    try {
      try {
        libc.sendDatagram(fd, buf, to);
      } catch (e) {
        const code = (e as libc.SysError).code;
        if (code !== 'EMSGSIZE' && code !== 'ENOBUFS') throw e;
        return sendLarge(buf);
      }
      return 'ok';
    } catch (e) {
      const code = (e as libc.SysError).code;
      // Congested, or journald restarting on the same path: wait. Anything else is this record's own fault.
      return code === 'EAGAIN' || code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOBUFS' ? 'again' : 'refused';
    }
  };
  const schedule = () => {
    if (timer !== null || closed) return;
    timer = setTimeout(() => {
      timer = null;
      drain();
    }, delay);
    timer.unref();
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  };
  const drain = () => {
    while (queue.length > 0) {
      const r = sendOne(queue[0]!);
      if (r === 'again') return schedule();
      // It reads again: the next wait, if any, is a short one.
      delay = RETRY_FIRST_MS;
      queue.shift();
      if (r === 'ok') sent++;
      else dropped++;
    }
    delay = RETRY_FIRST_MS;
    if (dropped > 0) {
      const n = dropped;
      const notice = encodeEntry([['PRIORITY', '4'], ['SYSLOG_IDENTIFIER', 'rundird'], ['RUNDIRD_DROPPED', String(n)], ['MESSAGE', `journald did not read for a while: ${n} log records were dropped (at most ${MAX_QUEUE} wait)`]]);
      if (sendOne(notice) === 'again') return schedule();
      dropped = 0;
    }
  };
  const enqueue = (buf: Buffer) => {
    queue.push(buf);
    if (queue.length > MAX_QUEUE) {
      queue.shift();
      dropped++;
    }
    schedule();
  };
  return {
    write(line: string): boolean {
      const buf = encodeEntry(recordToFields(parseRecord(line) ?? { msg: line.trimEnd() }));
      if (queue.length > 0) {
        enqueue(buf);
        return true;
      }
      const r = sendOne(buf);
      if (r === 'again') enqueue(buf);
      else if (r === 'ok') sent++;
      else dropped++;
      return true;
    },
    flushSync() {
      drain();
    },
    close() {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      drain();
      libc.close(fd);
    },
    stats: () => ({ queued: queue.length, dropped, sent }),
  };
}
