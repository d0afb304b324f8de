// pino JSON logs on stdout. Tests hand in their own destination to read what was logged.
import { createHmac, randomBytes } from 'node:crypto';
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

/**
 * A short stand-in for an identity (IP, API key) in log lines, where the raw value must not go. Keyed
 * with a secret: an unkeyed hash of an IPv4 address is reversed by trying all 2^32 of them. With no
 * `secret` (FLOODGATE_LOG_SECRET), each process draws its own, so its hashes match only its own lines.
 */
export function logHasher(secret?: string): (id: string) => string {
  const key = secret || randomBytes(32);
  return (id) => createHmac('sha256', key).update(id).digest('base64url').slice(0, 12);
}
