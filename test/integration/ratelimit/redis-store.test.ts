// What only the Redis store has: its scripts (NOSCRIPT recovery), its key layout (hashed identities,
// hash tags, TTLs, memory per identity), server time, and how it fails.
import { createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../../proxy/core/clock.js';
import { RateLimiter } from '../../../proxy/ratelimit/limiter.js';
import { RateLimitStoreTimeoutError, RedisRateLimitStore } from '../../../proxy/ratelimit/redis-store.js';
import type { Algorithm } from '../../../proxy/ratelimit/store.js';
import { deletePrefix, newRedis, uniquePrefix } from '../../helpers/redis.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const WINDOWS = [
  { name: 'hourly', limit: 100, windowMs: HOUR },
  { name: 'daily', limit: 1_000, windowMs: DAY },
  { name: 'burst', limit: 10, windowMs: 60_000 },
];
const ALGORITHMS: readonly Algorithm[] = ['sliding-log', 'sliding-counter'];

async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found.sort();
}

describe('RedisRateLimitStore', () => {
  let redis: Redis;
  const prefixes: string[] = [];
  const prefix = (name: string) => {
    const p = uniquePrefix(name);
    prefixes.push(p);
    return p;
  };

  beforeAll(() => {
    redis = newRedis();
  });
  afterAll(async () => {
    for (const p of prefixes) await deletePrefix(redis, p);
    await redis.quit();
  });

  it.each(ALGORITHMS)('%s: recovers from NOSCRIPT (SCRIPT FLUSH) and keeps counting', async (algorithm) => {
    const l = new RateLimiter({
      store: new RedisRateLimitStore({ redis, prefix: prefix('noscript') }),
      windows: WINDOWS,
      algorithm,
    });
    expect((await l.check('x')).windows[0]!.remaining).toBe(99);
    await redis.script('FLUSH', 'SYNC');
    expect((await l.check('x')).windows[0]!.remaining).toBe(98);
    // EVAL re-cached the script: the next call is a plain EVALSHA again.
    expect((await l.check('x')).windows[0]!.remaining).toBe(97);
  });

  it.each(ALGORITHMS)(
    '%s: raw identities never reach Redis; one hash tag per identity',
    async (algorithm) => {
      const p = prefix('keys');
      const l = new RateLimiter({
        store: new RedisRateLimitStore({ redis, prefix: p }),
        windows: WINDOWS,
        algorithm,
        scope: 'transcribe',
      });
      const ids = ['sk_live_51HqTOPSECRETapiKEY', '203.0.113.7', 'user@example.com'];
      for (const id of ids) await l.check(id);
      const keys = await keysUnder(redis, p);
      expect(keys).toHaveLength(algorithm === 'sliding-log' ? ids.length * WINDOWS.length : ids.length);
      const tags = new Set<string>();
      for (const k of keys) {
        for (const id of ids) expect(k).not.toContain(id);
        // The tag is what Redis Cluster hashes: the first {…} of the name.
        const tag = /\{([^}]+)\}/.exec(k)?.[1];
        expect(tag).toMatch(/^transcribe:[A-Za-z0-9_-]{16}$/);
        tags.add(tag!);
      }
      expect([...tags].sort()).toEqual(ids.map((id) => l.keyFor(id)).sort());
      // Values hold numbers only (timestamps, counters), never the identity.
      for (const k of keys) {
        const values = algorithm === 'sliding-log' ? await redis.zrange(k, 0, -1) : await redis.hvals(k);
        for (const v of values) expect(v).toMatch(/^[0-9-]+$/);
      }
    },
  );

  it('sets TTLs that end when the counters stop mattering', async () => {
    const p = prefix('ttl');
    const store = new RedisRateLimitStore({ redis, prefix: p });
    for (const algorithm of ALGORITHMS) {
      const l = new RateLimiter({ store, windows: WINDOWS, algorithm, scope: algorithm });
      await l.check('x');
      for (const k of store.keysFor(l.keyFor('x'), l.windows, algorithm)) {
        const ttl = await redis.pttl(k);
        expect(ttl).toBeGreaterThan(0);
        if (algorithm === 'sliding-log') {
          const w = WINDOWS.find((w) => k.endsWith(`:l:${w.name}`))!;
          expect(ttl).toBeLessThanOrEqual(w.windowMs);
        } else {
          expect(ttl).toBeGreaterThan(DAY);
          expect(ttl).toBeLessThanOrEqual(2 * DAY);
        }
      }
    }
  });

  it('reset finds the sliding-log keys even in a store that never served the identity', async () => {
    const p = prefix('reset');
    const windows = WINDOWS;
    const first = new RateLimiter({ store: new RedisRateLimitStore({ redis, prefix: p }), windows });
    await first.check('x');
    expect(await keysUnder(redis, p)).toHaveLength(3);
    const fresh = new RateLimiter({ store: new RedisRateLimitStore({ redis, prefix: p }), windows });
    await fresh.reset('x');
    expect(await keysUnder(redis, p)).toEqual([]);
  });

  it('sliding-counter: one hash of at most 200 bytes per identity for 100/h + 1000/d at full use', async () => {
    const p = prefix('memory');
    const clock = new ManualClock(Math.floor(1_700_000_000_000 / DAY) * DAY);
    const store = new RedisRateLimitStore({ redis, prefix: p, clock });
    const l = new RateLimiter({
      store,
      windows: WINDOWS.slice(0, 2),
      algorithm: 'sliding-counter',
      scope: 'transcribe',
    });
    const [key] = store.keysFor(l.keyFor('x'), l.windows, 'sliding-counter');
    // Two days at more than the limit allows: 150 attempts an hour, so both windows run full.
    let admitted = 0;
    let largest = 0;
    for (let hour = 0; hour < 48; hour++) {
      for (let i = 0; i < 150; i++) {
        if (await l.isAllowed('x')) admitted++;
        clock.advance(HOUR / 150);
      }
      largest = Math.max(largest, Number(await redis.call('MEMORY', 'USAGE', key!)));
    }
    expect(admitted).toBeGreaterThan(1_900);
    expect(await redis.object('ENCODING', key!)).toBe('listpack');
    expect(largest).toBeLessThanOrEqual(200);
  });

  it('decides on the server clock: a proxy with a skewed clock agrees with Redis', async () => {
    const store = new RedisRateLimitStore({ redis, prefix: prefix('skew') });
    const l = new RateLimiter({ store, windows: WINDOWS, algorithm: 'sliding-log' });
    const [sec] = await redis.time();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 3 * HOUR); // this process runs three hours fast
    try {
      const d = await l.check('x');
      expect(Math.abs(d.now! - Number(sec) * 1000)).toBeLessThan(5_000);
      expect(d.windows[0]!.resetAt - d.now!).toBe(HOUR);
    } finally {
      vi.useRealTimers();
    }
  });

  describe('failures propagate', () => {
    let silent: Server;
    const sockets = new Set<Socket>();
    const stray: Redis[] = [];
    afterEach(() => {
      for (const c of stray.splice(0)) c.disconnect();
    });
    beforeAll(async () => {
      // Accepts connections and never answers: a hung Redis.
      silent = createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    });
    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });

    it('a hung server: the call rejects after timeoutMs', async () => {
      const port = (silent.address() as { port: number }).port;
      const hung = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: null });
      stray.push(hung);
      const store = new RedisRateLimitStore({ redis: hung, prefix: 'never:', timeoutMs: 50 });
      const started = Date.now();
      const err = await store.hit('k', WINDOWS, 'sliding-log').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RateLimitStoreTimeoutError);
      expect((err as RateLimitStoreTimeoutError).code).toBe('RATE_LIMIT_STORE_TIMEOUT');
      expect(Date.now() - started).toBeLessThan(2_000);
    });

    it('no server: the call rejects with the client error', async () => {
      const probe = createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const port = (probe.address() as { port: number }).port;
      await new Promise((resolve) => probe.close(resolve));
      const down = new Redis({
        port,
        host: '127.0.0.1',
        enableOfflineQueue: false,
        lazyConnect: true,
        retryStrategy: () => null,
      });
      stray.push(down);
      const store = new RedisRateLimitStore({ redis: down, prefix: 'never:' });
      await expect(store.hit('k', WINDOWS, 'sliding-counter')).rejects.toThrow();
    });
  });
});
