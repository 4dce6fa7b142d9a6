// rundirctl explain: the catalog text journalctl -x shows for a record, from the catalog shipped
// with the program. Where the catalog cannot be installed into /usr/lib/systemd/catalog (a snap
// on Ubuntu Core), journalctl -x explains nothing; this does. Pure, given the catalog's text.
import { EVENTS, type EventName } from '../journal/events.js';

export interface CatalogEntry {
  id: string;
  subject: string;
  /** The header lines after Subject (Defined-By, Support, Documentation). */
  headers: string[];
  body: string;
}

/** Parses a journald catalog file: `-- ID` lines open each entry; a `#` line outside one is a comment. */
export function parseCatalog(text: string): Map<string, CatalogEntry> {
  const out = new Map<string, CatalogEntry>();
  let cur: { id: string; lines: string[] } | null = null;
  const close = () => {
    if (!cur) return;
    const blank = cur.lines.indexOf('');
    const head = blank < 0 ? cur.lines : cur.lines.slice(0, blank);
    const body = blank < 0 ? '' : cur.lines.slice(blank + 1).join('\n').trim();
    const subject = head.find((l) => l.startsWith('Subject:'))?.slice(8).trim() ?? '';
    out.set(cur.id, { id: cur.id, subject, headers: head.filter((l) => !l.startsWith('Subject:')), body });
  };
  for (const line of text.split('\n')) {
    const m = /^-- ([0-9a-f]{32})\s*$/.exec(line);
    if (m) {
      close();
      cur = { id: m[1]!, lines: [] };
    } else if (cur) cur.lines.push(line);
  }
  close();
  return out;
}

/** The id for a MESSAGE_ID or an event name (privdir-created); null for neither. */
export function idFor(what: string): string | null {
  const id = what.toLowerCase().replace(/-/g, '');
  if (/^[0-9a-f]{32}$/.test(id)) return id;
  return (EVENTS as Record<string, { id: string }>)[what]?.id ?? null;
}

/** The event name of an id, if it is one of rundird's. */
export function eventOf(id: string): EventName | null {
  for (const [name, def] of Object.entries(EVENTS)) if (def.id === id) return name as EventName;
  return null;
}

/** An entry as journalctl -x shows it: a dashed rule, the subject, the headers, the text. */
export function formatEntry(e: CatalogEntry): string {
  const event = eventOf(e.id);
  return [`-- ${e.subject}`, `-- MESSAGE_ID=${e.id}${event ? ` (${event})` : ''}`, ...e.headers.map((h) => `-- ${h}`), '--', ...e.body.split('\n').map((l) => `-- ${l}`.trimEnd())].join('\n');
}
