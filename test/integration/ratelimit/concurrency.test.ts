// Accuracy under concurrency on real Redis: many proxies (here, 4 connections) hitting one identity at
// once must admit exactly the limit, and count every admitted request in every window.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../core/clock.js';
import { RateLimiter } from '../../../proxy/ratelimit/limiter.js';
import { RedisRateLimitStore } from '../../../proxy/ratelimit/redis-store.js';
import type { Algorithm } from '../../../proxy/ratelimit/store.js';
import { deletePrefix, newRedis, uniquePrefix } from '../../helpers/redis.js';

const WINDOWS = [
  { name: 'hourly', limit: 100, windowMs: 3_600_000 },
  { name: 'daily', limit: 1_000, windowMs: 86_400_000 },
];
const CONNECTIONS = 4;
const CALLS = 1_000;

describe('RedisRateLimitStore under concurrency', () => {
  const prefix = uniquePrefix('concurrency');
  let clients: Redis[];

  beforeAll(() => {
    clients = Array.from({ length: CONNECTIONS }, () => newRedis());
  });
  afterAll(async () => {
    await deletePrefix(clients[0]!, prefix);
    await Promise.all(clients.map((c) => c.quit()));
  });

  // sliding-log runs on the server's TIME. sliding-counter runs on a pinned clock: were a fixed window
  // to roll during the burst, its estimate would legitimately differ from 100 (see the error bound).
  it.each<[Algorithm, ManualClock | undefined]>([
    ['sliding-log', undefined],
    ['sliding-counter', new ManualClock(1_700_000_000_000)],
  ])('%s: 1,000 concurrent isAllowed over 4 connections admit exactly 100', async (algorithm, clock) => {
    const limiters = clients.map(
      (redis) =>
        new RateLimiter({
          store: new RedisRateLimitStore(clock ? { redis, prefix, clock } : { redis, prefix }),
          windows: WINDOWS,
          algorithm,
          scope: 'transcribe',
        }),
    );
    const id = `client-${algorithm}`;
    const results = await Promise.all(
      Array.from({ length: CALLS }, (_, i) => limiters[i % CONNECTIONS]!.isAllowed(id)),
    );
    expect(results.filter(Boolean)).toHaveLength(100);

    // Every admitted request counted in both windows; none of the 900 rejections did.
    const info = await limiters[0]!.getLimitInfo(id);
    expect(info.windows.map((w) => [w.name, w.remaining])).toEqual([
      ['hourly', 0],
      ['daily', 900],
    ]);
    if (algorithm === 'sliding-log') {
      // One log holds both windows' hits: each admitted request is one entry.
      const key = new RedisRateLimitStore({ redis: clients[0]!, prefix }).keyFor(
        limiters[0]!.keyFor(id),
        algorithm,
      );
      expect(await clients[0]!.zcard(key)).toBe(100);
    }
  });
});
