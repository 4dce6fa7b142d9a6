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
 * Records are buffered and written once per event-loop turn: a burst of thousands of records
 * becomes a few writes, and a lone record is still out before the daemon waits again.
 */
export function createLogger(level: LevelWithSilent, dest: pino.DestinationStream & { flush?: () => void } = pino.destination({ fd: 1, sync: false, minLength: 8192 })): Log {
  let flushScheduled = false;
  const flush = () => {
    flushScheduled = false;
    dest.flush?.();
  };
  return pino(
    {
      level,
      base: { SYSLOG_IDENTIFIER: 'rundird' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args);
          if (!flushScheduled) {
            flushScheduled = true;
            setImmediate(flush);
          }
        },
      },
    },
    dest,
  );
}

const LEVEL_OF_PRIORITY: Record<number, 'error' | 'warn' | 'info'> = { 3: 'error', 4: 'warn', 5: 'info', 6: 'info' };

/** Logs one event: one structured record per thing that happened. */
export function logEvent(log: Log, event: EventName, fields: LogFields, message: string): void {
  const def = EVENTS[event];
  const level = LEVEL_OF_PRIORITY[def.priority] ?? 'info';
  log[level]({ event, MESSAGE_ID: def.id, PRIORITY: def.priority, ...fields }, message);
}
