// The Lua scripts and the memory store implement the same arithmetic twice. Driven by one pinned clock
// through the same random traffic, they must give identical decisions, to the millisecond.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../core/clock.js';
import { RateLimiter } from '../../../proxy/ratelimit/limiter.js';
import { MemoryRateLimitStore } from '../../../proxy/ratelimit/memory-store.js';
import { RedisRateLimitStore } from '../../../proxy/ratelimit/redis-store.js';
import type { Algorithm } from '../../../proxy/ratelimit/store.js';
import { deletePrefix, newRedis, uniquePrefix } from '../../helpers/redis.js';

// Odd lengths and limits, so fixed windows roll at different moments.
const WINDOWS = [
  { name: 'a', limit: 3, windowMs: 700 },
  { name: 'b', limit: 7, windowMs: 2_300 },
  { name: 'c', limit: 11, windowMs: 9_100 },
];

/** A small deterministic PRNG (mulberry32), so a failure replays. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('memory store and Lua scripts agree', () => {
  const prefix = uniquePrefix('differential');
  let redis: Redis;

  beforeAll(() => {
    redis = newRedis();
  });
  afterAll(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  // `costs`: each hit costs 1 to 4 units (over window a's limit now and then), else 1.
  it.each<[Algorithm, number, boolean]>([
    ['sliding-log', 1, false],
    ['sliding-log', 2, false],
    ['sliding-counter', 1, false],
    ['sliding-counter', 2, false],
    ['sliding-log', 3, true],
    ['sliding-log', 4, true],
    ['sliding-counter', 3, true],
    ['sliding-counter', 4, true],
  ])('%s, seed %i, costs %s: 600 random steps', async (algorithm, seed, costs) => {
    const clock = new ManualClock(1_700_000_000_123);
    const stores = [new MemoryRateLimitStore({ clock }), new RedisRateLimitStore({ redis, prefix, clock })];
    const [memory, shared] = stores.map(
      (store) => new RateLimiter({ store, windows: WINDOWS, algorithm, scope: `seed${seed}` }),
    ) as [RateLimiter, RateLimiter];
    const random = rng(seed);
    const seen = { allowed: 0, denied: 0 };
    for (let step = 0; step < 600; step++) {
      // Bursts (no time passing) and pauses up to a fixed window and more.
      const r = random();
      clock.advance(r < 0.5 ? 0 : r < 0.9 ? Math.floor(random() * 300) : Math.floor(random() * 3_000));
      const id = random() < 0.8 ? 'alice' : 'bob';
      const peek = random() < 0.2;
      const cost = costs ? 1 + Math.floor(random() * 4) : 1;
      const key = memory.keyFor(id);
      const [m, s] = await Promise.all(
        peek
          ? stores.map((store) => store.peek(key, memory.windows, algorithm))
          : [memory.check(id, cost), shared.check(id, cost)],
      );
      expect(s, `step ${step}`).toEqual(m);
      seen[m!.allowed ? 'allowed' : 'denied']++;
    }
    // The traffic exercised both answers, plenty of times.
    expect(seen.allowed).toBeGreaterThan(100);
    expect(seen.denied).toBeGreaterThan(100);
  });
});
