// What only the Redis store has: its scripts (NOSCRIPT recovery), its key layout (hashed identities,
// hash tags, TTLs, memory per identity), server time, and how it fails.
import { createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../../core/clock.js';
import { RateLimiter } from '../../../proxy/ratelimit/limiter.js';
import {
  RateLimitStoreTimeoutError,
  REFUSAL_CACHE_MAX_MS,
  RedisRateLimitStore,
} from '../../../proxy/ratelimit/redis-store.js';
import type { Algorithm, Decision } from '../../../proxy/ratelimit/store.js';
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
      expect(keys).toHaveLength(ids.length);
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
        const values = algorithm === 'sliding-log' ? await redis.zrange(k, 0, -1) : [await redis.get(k)];
        for (const v of values) expect(v).toMatch(/^[0-9 -]+$/);
      }
    },
  );

  it('sets TTLs that end when the counters stop mattering', async () => {
    const p = prefix('ttl');
    const store = new RedisRateLimitStore({ redis, prefix: p });
    for (const algorithm of ALGORITHMS) {
      const l = new RateLimiter({ store, windows: WINDOWS, algorithm, scope: algorithm });
      await l.check('x');
      const ttl = await redis.pttl(store.keyFor(l.keyFor('x'), algorithm));
      if (algorithm === 'sliding-log') {
        // The log lives as long as its longest window.
        expect(ttl).toBeGreaterThan(DAY - 60_000);
        expect(ttl).toBeLessThanOrEqual(DAY);
      } else {
        expect(ttl).toBeGreaterThan(DAY);
        expect(ttl).toBeLessThanOrEqual(2 * DAY);
      }
    }
  });

  it("reset deletes both algorithms' keys, even from a store that never served the identity", async () => {
    const p = prefix('reset');
    for (const algorithm of ALGORITHMS) {
      const l = new RateLimiter({
        store: new RedisRateLimitStore({ redis, prefix: p }),
        windows: WINDOWS,
        algorithm,
      });
      await l.check('x');
    }
    expect(await keysUnder(redis, p)).toHaveLength(2);
    const fresh = new RateLimiter({ store: new RedisRateLimitStore({ redis, prefix: p }), windows: WINDOWS });
    await fresh.reset('x');
    expect(await keysUnder(redis, p)).toEqual([]);
  });

  it('sliding-counter: one short string of at most 200 bytes per identity for 100/h + 1000/d at full use', async () => {
    const p = prefix('memory');
    const clock = new ManualClock(Math.floor(1_700_000_000_000 / DAY) * DAY);
    const store = new RedisRateLimitStore({ redis, prefix: p, clock, refusalCache: true });
    const l = new RateLimiter({
      store,
      windows: WINDOWS.slice(0, 2),
      algorithm: 'sliding-counter',
      scope: 'transcribe',
    });
    const key = store.keyFor(l.keyFor('x'), 'sliding-counter');
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
    // Small enough for Redis's embedded string encoding (value in the same allocation as its header).
    expect(await redis.object('ENCODING', key!)).toBe('embstr');
    expect(await redis.get(key!)).toMatch(/^\d+ \d+ \d+ \d+ \d+ \d+$/);
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

  describe('batching: the decisions of one turn of the event loop share a call', () => {
    /** Counts the script calls the store sends through `client`. */
    const countCalls = (client: Redis) => {
      const spy = vi.spyOn(client, 'call');
      return {
        scripts: () => spy.mock.calls.filter(([name]) => name === 'evalsha' || name === 'eval').length,
        restore: () => spy.mockRestore(),
      };
    };

    it.each(ALGORITHMS)(
      '%s: 300 decisions in one tick → 3 calls (128 per call at most), each answered for its own key',
      async (algorithm) => {
        const store = new RedisRateLimitStore({ redis, prefix: prefix('batch') });
        const l = new RateLimiter({ store, windows: WINDOWS, algorithm });
        await l.check('warm'); // NOSCRIPT recovery, if any, stays out of the count
        const calls = countCalls(redis);
        try {
          // Key i is hit (i % 3) + 1 times: the later hits of a key see the earlier ones of the same batch.
          const hits: [string, Promise<Decision>][] = [];
          for (let i = 0; i < 150; i++)
            for (let k = 0; k <= i % 3; k++) hits.push([`k${i}`, l.check(`k${i}`)]);
          expect(hits).toHaveLength(50 * (1 + 2 + 3));
          const seen = new Map<string, number[]>();
          for (const [id, p] of hits) {
            const d = await p;
            expect(d.allowed).toBe(true);
            seen.set(id, [...(seen.get(id) ?? []), d.windows[0]!.remaining]);
          }
          expect(calls.scripts()).toBe(3);
          for (let i = 0; i < 150; i++) expect(seen.get(`k${i}`)).toEqual([99, 98, 97].slice(0, (i % 3) + 1));
        } finally {
          calls.restore();
        }
      },
    );

    it.each(ALGORITHMS)(
      '%s: one key over its limit within a batch: exactly the limit is admitted',
      async (algorithm) => {
        const store = new RedisRateLimitStore({ redis, prefix: prefix('batch-limit') });
        const l = new RateLimiter({
          store,
          windows: [{ name: 'burst', limit: 10, windowMs: 60_000 }],
          algorithm,
        });
        const allowed = await Promise.all(Array.from({ length: 40 }, () => l.isAllowed('same')));
        expect(allowed.filter(Boolean)).toHaveLength(10);
        expect(allowed.slice(0, 10).every(Boolean)).toBe(true);
      },
    );

    it('a test clock that moves within a tick starts a new batch: each decision keeps its own time', async () => {
      const clock = new ManualClock(1_700_000_000_000);
      const store = new RedisRateLimitStore({ redis, prefix: prefix('batch-clock'), clock });
      const l = new RateLimiter({ store, windows: WINDOWS, algorithm: 'sliding-log' });
      await l.check('warm');
      const calls = countCalls(redis);
      try {
        const first = l.check('x');
        clock.advance(1_000);
        const second = l.check('x');
        expect((await first).now).toBe(1_700_000_000_000);
        expect((await second).now).toBe(1_700_000_001_000);
        expect((await second).windows[0]!.remaining).toBe(98);
        expect(calls.scripts()).toBe(2);
      } finally {
        calls.restore();
      }
    });

    it('a failed call (fault injected with a spy) rejects every decision of its batch, and the next batch works', async () => {
      const store = new RedisRateLimitStore({ redis, prefix: prefix('batch-fail') });
      const l = new RateLimiter({ store, windows: WINDOWS, algorithm: 'sliding-counter' });
      const spy = vi.spyOn(redis, 'call').mockImplementationOnce(() => Promise.reject(new Error('injected')));
      try {
        const results = await Promise.allSettled([l.check('a'), l.check('b'), l.check('c')]);
        expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
        expect((results[0] as PromiseRejectedResult).reason).toHaveProperty('message', 'injected');
        expect((await l.check('a')).windows[0]!.remaining).toBe(99);
      } finally {
        spy.mockRestore();
      }
    });
  });

  describe('the refusal cache (opt-in): an identity Redis refused is refused again without a call', () => {
    const countScripts = (client: Redis) => {
      const spy = vi.spyOn(client, 'call');
      return {
        scripts: () => spy.mock.calls.filter(([name]) => name === 'evalsha' || name === 'eval').length,
        restore: () => spy.mockRestore(),
      };
    };
    const MINUTE = [{ name: 'minute', limit: 3, windowMs: 60_000 }];

    it.each(ALGORITHMS)(
      '%s: replays the refusal, aged, without a call, until REFUSAL_CACHE_MAX_MS has passed',
      async (algorithm) => {
        const clock = new ManualClock(1_700_006_400_000);
        const store = new RedisRateLimitStore({
          redis,
          prefix: prefix('refusal'),
          clock,
          refusalCache: true,
        });
        const l = new RateLimiter({ store, windows: MINUTE, algorithm });
        for (let i = 0; i < 3; i++) expect((await l.check('x')).allowed).toBe(true);
        const refused = await l.check('x');
        expect(refused.allowed).toBe(false);
        const calls = countScripts(redis);
        try {
          clock.advance(400);
          const replayed = await l.check('x');
          expect(calls.scripts()).toBe(0);
          expect(replayed.allowed).toBe(false);
          expect(replayed.now).toBe(refused.now! + 400);
          expect(replayed.windows[0]!.retryAfterMs).toBe(refused.windows[0]!.retryAfterMs - 400);
          expect(replayed.windows[0]!.remaining).toBe(0);
          // A different identity, or the same one under another window set, still asks Redis.
          expect((await l.check('y')).allowed).toBe(true);
          const other = new RateLimiter({ store, windows: [{ ...MINUTE[0]!, limit: 5 }], algorithm });
          expect((await other.check('x')).allowed).toBe(true);
          expect(calls.scripts()).toBe(2);
          clock.advance(REFUSAL_CACHE_MAX_MS - 400);
          expect((await l.check('x')).allowed).toBe(false);
          expect(calls.scripts()).toBe(3);
        } finally {
          calls.restore();
        }
      },
    );

    it.each(ALGORITHMS)(
      '%s: a retry-after shorter than the cap ends the replay exactly when Redis would admit again',
      async (algorithm) => {
        const clock = new ManualClock(1_700_006_400_000);
        const store = new RedisRateLimitStore({
          redis,
          prefix: prefix('refusal-retry'),
          clock,
          refusalCache: true,
        });
        const l = new RateLimiter({ store, windows: [{ name: 'w', limit: 1, windowMs: 500 }], algorithm });
        expect((await l.check('x')).allowed).toBe(true);
        clock.advance(100);
        const refused = await l.check('x');
        expect(refused.allowed).toBe(false);
        const retry = refused.windows[0]!.retryAfterMs;
        expect(retry).toBeGreaterThan(0);
        expect(retry).toBeLessThan(REFUSAL_CACHE_MAX_MS);
        const calls = countScripts(redis);
        try {
          clock.advance(retry - 1);
          expect((await l.check('x')).allowed).toBe(false);
          expect(calls.scripts()).toBe(0);
          clock.advance(1);
          // Redis itself admits it at that moment: the cache never refused what Redis would admit.
          expect((await l.check('x')).allowed).toBe(true);
          expect(calls.scripts()).toBe(1);
        } finally {
          calls.restore();
        }
      },
    );

    it.each(ALGORITHMS)(
      '%s: a refusal of cost N is replayed only to cost N; a cheaper request asks Redis and may pass',
      async (algorithm) => {
        const clock = new ManualClock(1_700_006_400_000);
        const store = new RedisRateLimitStore({
          redis,
          prefix: prefix('refusal-cost'),
          clock,
          refusalCache: true,
        });
        const l = new RateLimiter({
          store,
          windows: [{ name: 'minute', limit: 10, windowMs: 60_000 }],
          algorithm,
        });
        expect((await l.check('x', 7)).allowed).toBe(true);
        const refused = await l.check('x', 5);
        expect(refused.allowed).toBe(false);
        const calls = countScripts(redis);
        try {
          const replayed = await l.check('x', 5);
          expect(replayed.allowed).toBe(false);
          expect(replayed.windows[0]!.retryAfterMs).toBe(refused.windows[0]!.retryAfterMs);
          expect(calls.scripts()).toBe(0);
          // Three units remain: a request of cost 3 is Redis's to decide, and it fits.
          const cheaper = await l.check('x', 3);
          expect(cheaper.allowed).toBe(true);
          expect(cheaper.windows[0]!.remaining).toBe(0);
          expect(calls.scripts()).toBe(1);
          // A dearer one is asked too: its wait is not the one remembered.
          expect((await l.check('x', 6)).allowed).toBe(false);
          expect(calls.scripts()).toBe(2);
        } finally {
          calls.restore();
        }
      },
    );

    it('a reset through the store ends the replay at once; one through another proxy, within the cap', async () => {
      const clock = new ManualClock(1_700_006_400_000);
      const p = prefix('refusal-reset');
      const here = new RedisRateLimitStore({ redis, prefix: p, clock, refusalCache: true });
      const there = new RedisRateLimitStore({ redis, prefix: p, clock });
      const l = new RateLimiter({ store: here, windows: MINUTE, algorithm: 'sliding-log' });
      const elsewhere = new RateLimiter({ store: there, windows: MINUTE, algorithm: 'sliding-log' });
      for (let i = 0; i < 4; i++) await l.check('x');
      expect((await l.check('x')).allowed).toBe(false);
      await l.reset('x');
      expect((await l.check('x')).allowed).toBe(true);

      for (let i = 0; i < 3; i++) await l.check('x');
      expect((await l.check('x')).allowed).toBe(false);
      await elsewhere.reset('x');
      clock.advance(REFUSAL_CACHE_MAX_MS - 1);
      expect((await l.check('x')).allowed).toBe(false);
      clock.advance(1);
      expect((await l.check('x')).allowed).toBe(true);
    });

    it('a policy whose limits changed (a new limiter scope) does not inherit refusals', async () => {
      const clock = new ManualClock(1_700_006_400_000);
      const store = new RedisRateLimitStore({
        redis,
        prefix: prefix('refusal-scope'),
        clock,
        refusalCache: true,
      });
      const before = new RateLimiter({
        store,
        windows: MINUTE,
        algorithm: 'sliding-counter',
        scope: 'r:aaaa',
      });
      for (let i = 0; i < 3; i++) await before.check('x');
      expect((await before.check('x')).allowed).toBe(false);
      const after = new RateLimiter({
        store,
        windows: [{ ...MINUTE[0]!, limit: 10 }],
        algorithm: 'sliding-counter',
        scope: 'r:bbbb',
      });
      expect((await after.check('x')).allowed).toBe(true);
    });

    it('a failed call is not remembered, and a peek that finds room forgets a refusal', async () => {
      const clock = new ManualClock(1_700_006_400_000);
      const p = prefix('refusal-peek');
      const store = new RedisRateLimitStore({ redis, prefix: p, clock, refusalCache: true });
      const l = new RateLimiter({ store, windows: MINUTE, algorithm: 'sliding-log' });
      const spy = vi.spyOn(redis, 'call').mockImplementationOnce(() => Promise.reject(new Error('injected')));
      try {
        await expect(l.check('x')).rejects.toThrow('injected');
      } finally {
        spy.mockRestore();
      }
      for (let i = 0; i < 3; i++) expect((await l.check('x')).allowed).toBe(true);
      expect((await l.check('x')).allowed).toBe(false);
      await new RateLimiter({ store: new RedisRateLimitStore({ redis, prefix: p }), windows: MINUTE }).reset(
        'x',
      );
      expect(await l.getRetryAfter('x')).toBe(0);
      expect((await l.check('x')).allowed).toBe(true);
    });
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
      expect((err as RateLimitStoreTimeoutError).code).toBe('rate_limit_store_timeout');
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
