// pino JSON logs on stdout. Tests hand in their own destination to read what was logged.
import { createHash } from 'node:crypto';
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(name: string, destination?: DestinationStream): Logger {
  return pino(
    {
      name,
      level: process.env.LOG_LEVEL ?? 'info',
      // Secrets never reach a log line, whatever a caller passes in.
      redact: {
        paths: ['*.authorization', '*.headers.authorization', '*.token', '*.password', '*.api_key'],
        censor: '***',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ sync: false }),
  );
}

/** A short, stable stand-in for an identity (IP, API key) in log lines, where the raw value must not go. */
export function hashForLog(id: string): string {
  return createHash('sha256').update(id).digest('base64url').slice(0, 12);
}
