// Structured logs (pino) to stderr. Privacy by default: no destination and no client address is ever
// passed to the logger by Pigeon's code; stdout stays free for the lines people and tools read.
import { pino, type Logger } from 'pino';

export type Log = Logger;

export function createLog(level: string = process.env.PIGEON_LOG ?? 'info'): Log {
  return pino({ level, base: undefined }, pino.destination({ fd: 2, sync: false }));
}

/** A logger that drops everything, for library use and tests. */
export const silentLog: Log = pino({ level: 'silent' });
