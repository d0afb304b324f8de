// The Redis connection the limiter uses. Tuned for a dependency that may disappear: commands fail
// at once while disconnected (no offline queue), so an outage costs a request nothing beyond the
// breaker in front of the store, and ioredis keeps reconnecting in the background.
import { Redis } from 'ioredis';

export interface RedisClientOptions {
  /** Bound on one command; ioredis rejects it after this. */
  readonly commandTimeoutMs: number;
  /** Batch commands issued in the same tick into one write (see bench/: the default). */
  readonly autoPipelining?: boolean;
}

export function connectRedis(url: string, o: RedisClientOptions): Redis {
  const redis = new Redis(url, {
    commandTimeout: o.commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    enableAutoPipelining: o.autoPipelining ?? true,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2_000),
    lazyConnect: false,
  });
  // Errors surface through failed commands and the store's breaker; the event must still be
  // handled, or ioredis prints each reconnect failure.
  redis.on('error', () => {});
  return redis;
}

/** Whether a Redis answers at `url` within `timeoutMs`; used before deciding how to run. */
export async function pingRedis(url: string, timeoutMs = 1_000): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}
