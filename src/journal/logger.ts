// The logging API is pino; each record carries the event name and its MESSAGE_ID so that the
// journald destination (and anyone grepping JSON lines) can find every kind of event.
import pino, { type Logger, type LevelWithSilent } from 'pino';
import { EVENTS, type EventName } from './events.js';

export type Log = Logger;

export interface LogFields {
  uid?: number;
  path?: string;
  instance?: string;
  [k: string]: unknown;
}

/**
 * Asynchronous writes with no minimum length: while one write is in flight, sonic-boom gathers
 * the records that follow and writes them together, so a burst becomes a few writes, and no
 * record waits in a buffer for more to come (a minLength left the last records of a quiet
 * spell unwritten until the next burst).
 */
export function createLogger(level: LevelWithSilent, dest: pino.DestinationStream = pino.destination({ fd: 1, sync: false, minLength: 0 })): Log {
  return pino(
    {
      level,
      base: { SYSLOG_IDENTIFIER: 'rundird' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
}

const LEVEL_OF_PRIORITY: Record<number, 'error' | 'warn' | 'info'> = { 3: 'error', 4: 'warn', 5: 'info', 6: 'info' };

/** Who else hears of each event (the metrics): one observer, set by the daemon. */
let observer: ((event: EventName, fields: LogFields) => void) | null = null;
export function observeEvents(fn: ((event: EventName, fields: LogFields) => void) | null): void {
  observer = fn;
}

/** Logs one event: one structured record per thing that happened. */
export function logEvent(log: Log, event: EventName, fields: LogFields, message: string): void {
  observer?.(event, fields);
  const def = EVENTS[event];
  const level = LEVEL_OF_PRIORITY[def.priority] ?? 'info';
  log[level]({ event, MESSAGE_ID: def.id, PRIORITY: def.priority, ...fields }, message);
}
