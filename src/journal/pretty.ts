// One readable line per record on a terminal, as journalctl shows them: time, level, the
// event, the message, and the key fields that are not in the message already. Colour only on a
// terminal and without NO_COLOR. JSON lines stay the format for pipes, files and scripts.
import { Writable } from 'node:stream';

const LEVELS: Record<string, [string, string]> = {
  trace: ['TRACE', '\x1b[90m'],
  debug: ['DEBUG', '\x1b[90m'],
  info: ['INFO ', '\x1b[32m'],
  warn: ['WARN ', '\x1b[33m'],
  error: ['ERROR', '\x1b[31m'],
  fatal: ['FATAL', '\x1b[31;1m'],
};
/** Fields worth a glance beside the message (the rest is in --log-format json and the journal). */
const KEY_FIELDS = ['uid', 'unit', 'instance', 'reason', 'mode', 'session_id', 'error', 'err'];

export function formatRecord(line: string, color: boolean): string {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const c = (code: string, s: string) => (color ? `${code}${s}\x1b[0m` : s);
  // Local time, as journalctl and rundirctl timeline show it (the record keeps UTC).
  const t = typeof r.time === 'string' ? new Date(r.time) : null;
  const p2 = (n: number) => String(n).padStart(2, '0');
  const time = t && !Number.isNaN(t.getTime()) ? `${p2(t.getHours())}:${p2(t.getMinutes())}:${p2(t.getSeconds())}.${String(t.getMilliseconds()).padStart(3, '0')}` : '';
  const [label, code] = LEVELS[String(r.level)] ?? [String(r.level).toUpperCase().padEnd(5), ''];
  const msg = String(r.msg ?? '');
  const extra: string[] = [];
  for (const k of KEY_FIELDS) {
    const v = r[k];
    if (v === undefined || v === null) continue;
    const s = typeof v === 'object' ? String((v as { message?: unknown }).message ?? JSON.stringify(v)) : String(v);
    if (!msg.includes(s)) extra.push(`${k}=${s.length > 80 ? s.slice(0, 77) + '...' : s}`);
  }
  const event = r.event ? c('\x1b[36m', String(r.event)) + ' ' : '';
  return `${c('\x1b[90m', time)} ${c(code, label)} ${event}${msg}${extra.length ? c('\x1b[90m', `  (${extra.join(' ')})`) : ''}`;
}

/** A pino destination that writes each JSON record as one readable line. */
export function prettyDestination(out: NodeJS.WritableStream, color: boolean): Writable {
  let rest = '';
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = rest + chunk.toString('utf8');
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      const pretty = lines.filter(Boolean).map((l) => formatRecord(l, color) + '\n').join('');
      if (pretty) out.write(pretty, () => done());
      else done();
    },
  });
}
