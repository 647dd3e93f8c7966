import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout, one field per fact, the pod on every line. */
export function createLogger(level: string, pod: string): Logger {
  return pino({ level, base: { pod }, timestamp: pino.stdTimeFunctions.isoTime });
}
