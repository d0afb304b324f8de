// One RateLimitStore contract, run against every implementation (memory; Redis with a pinned clock,
// with and without its refusal cache; Redis on its own TIME; the guarded store, over a live Redis and
// over a dead one that leaves its local fallback to decide; a cluster worker's remote store, answered by
// the primary's hub). Time-exact cases need a ManualClock; the real-time harnesses prove that windows
// slide with short windows, waiting by bounded polling.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../core/breaker/circuit-breaker.js';
import { BreakerRegistry } from '../../core/breaker/registry.js';
import { type Clock, ManualClock, systemClock } from '../../core/clock.js';
import { ClusterHub } from '../../proxy/cluster/hub.js';
import type { Answers, Batch } from '../../proxy/cluster/messages.js';
import { PrimaryLink } from '../../proxy/cluster/primary-link.js';
import { RemoteStore } from '../../proxy/cluster/remote-store.js';
import { GuardedStore } from '../../proxy/ratelimit/guarded-store.js';
import { RateLimiter } from '../../proxy/ratelimit/limiter.js';
import { MemoryRateLimitStore } from '../../proxy/ratelimit/memory-store.js';
import { RedisRateLimitStore } from '../../proxy/ratelimit/redis-store.js';
import type { Algorithm, RateLimitStore, WindowSpec } from '../../proxy/ratelimit/store.js';
import { deletePrefix, newRedis, uniquePrefix } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

interface Harness {
  readonly name: string;
  /** False for a store that cannot reach the counters a reset would clear (a guarded store whose Redis is down). */
  readonly resets?: boolean;
  /** Drives the store's time; null when the store runs on real time (then tests poll instead). */
  readonly clock: ManualClock | null;
  open(): Promise<RateLimitStore>;
  close(): Promise<void>;
}

const ALGORITHMS: readonly Algorithm[] = ['sliding-log', 'sliding-counter'];
const HOUR = 3_600_000;
const DAY = 86_400_000;

function memoryHarness(clock: ManualClock | null): Harness {
  let store: MemoryRateLimitStore | undefined;
  return {
    name: clock ? 'memory (manual clock)' : 'memory (system clock)',
    clock,
    open: async () => {
      store = new MemoryRateLimitStore({ clock: clock ?? systemClock });
      return store;
    },
    close: async () => store?.close(),
  };
}

function redisHarness(clock: ManualClock | null, refusalCache = false): Harness {
  const prefix = uniquePrefix('conformance');
  let redis: Redis | undefined;
  return {
    name: `${clock ? 'redis (pinned clock)' : 'redis (server TIME)'}${refusalCache ? ' + refusal cache' : ''}`,
    clock,
    open: async () => {
      redis = newRedis();
      const options: { redis: Redis; prefix: string; clock?: Clock; refusalCache: boolean } = {
        redis,
        prefix,
        refusalCache,
      };
      if (clock) options.clock = clock;
      return new RedisRateLimitStore(options);
    },
    close: async () => {
      if (!redis) return;
      await deletePrefix(redis, prefix);
      await redis.quit();
    },
  };
}

/**
 * The store the proxy runs with store.type redis: Redis behind a breaker, the memory store as on_error:
 * local's fallback. `down`: a Redis nothing answers for, so the breaker opens and the fallback decides.
 */
function guardedHarness(clock: ManualClock, down: boolean): Harness {
  const prefix = uniquePrefix('conformance-guarded');
  let redis: Redis | undefined;
  let store: GuardedStore | undefined;
  return {
    name: down ? 'guarded (Redis down: local fallback)' : 'guarded (Redis up)',
    clock,
    resets: !down,
    open: async () => {
      redis = down
        ? new Redis('redis://127.0.0.1:1', {
            lazyConnect: true,
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            retryStrategy: () => null,
          })
        : newRedis();
      // The breaker keeps time apart from the store's (tests move that far ahead), so once open it stays
      // open: every decision is then the fallback's, synchronously, in call order.
      const breaker = new CircuitBreaker({ name: 'store', clock: new ManualClock(), failureThreshold: 3 });
      store = new GuardedStore({
        primary: new RedisRateLimitStore({ redis, prefix, clock }),
        breaker,
        fallback: new MemoryRateLimitStore({ clock }),
      });
      if (down) {
        const trip = [{ name: 'trip', limit: 1, windowMs: 1_000 }];
        for (let i = 0; i < 3; i++) await store.peek('trip', trip, 'sliding-log');
        expect(breaker.state).toBe('OPEN');
      }
      return store;
    },
    close: async () => {
      await store?.close();
      if (!redis || down) return redis?.disconnect();
      await deletePrefix(redis, prefix);
      await redis.quit();
    },
  };
}

/**
 * A cluster worker's store (store.type memory with workers): every call travels as JSON, as over the
 * IPC channel, to the primary's hub and its memory store.
 */
function remoteHarness(clock: ManualClock): Harness {
  return {
    name: 'cluster remote store (primary memory store)',
    clock,
    open: async () => {
      const memory = new MemoryRateLimitStore({ clock });
      const hub = new ClusterHub({ breakers: new BreakerRegistry({ clock }), store: () => memory, clock });
      const link: PrimaryLink = new PrimaryLink((b) => {
        const answers = hub.serve(1, JSON.parse(JSON.stringify(b)) as Batch);
        const wire = JSON.stringify(answers);
        setImmediate(() => link.receive(JSON.parse(wire) as Answers));
      });
      return new RemoteStore(link);
    },
    close: async () => undefined,
  };
}

function rateLimitStoreConformance(h: Harness): void {
  describe(`RateLimitStore conformance: ${h.name}`, () => {
    let store: RateLimitStore;
    let n = 0;
    const key = () => `id-${++n}`;
    const limiter = (windows: WindowSpec[], algorithm: Algorithm) =>
      new RateLimiter({ store, windows, algorithm, scope: 'conf' });

    beforeAll(async () => {
      // Start the pinned clock at a fixed-window boundary, so sliding-counter arithmetic is easy to read.
      h.clock?.set(1_700_006_400_000);
      store = await h.open();
    });
    afterAll(() => h.close());

    describe.each(ALGORITHMS)('%s', (algorithm) => {
      it('the basic case: 5 allowed, the 6th denied, retry_after > 0', async () => {
        const l = limiter([{ name: 'minute', limit: 5, windowMs: 60_000 }], algorithm);
        const id = key();
        for (let i = 0; i < 5; i++) expect(await l.isAllowed(id)).toBe(true);
        expect(await l.isAllowed(id)).toBe(false);
        expect(await l.getRetryAfter(id)).toBeGreaterThan(0);
        const d = await l.check(id);
        expect(d.allowed).toBe(false);
        expect(d.windows[0]!.remaining).toBe(0);
        expect(d.windows[0]!.retryAfterMs).toBeGreaterThan(0);
      });

      it('several windows: the daily one exhausted denies, and the hourly count does not move', async () => {
        const windows = [
          { name: 'hourly', limit: 10, windowMs: HOUR },
          { name: 'daily', limit: 3, windowMs: DAY },
        ];
        const l = limiter(windows, algorithm);
        const id = key();
        for (let i = 0; i < 3; i++) expect((await l.check(id)).allowed).toBe(true);
        for (let i = 0; i < 5; i++) {
          const d = await l.check(id);
          expect(d.allowed).toBe(false);
          expect(d.windows.map((w) => [w.name, w.remaining])).toEqual([
            ['hourly', 7],
            ['daily', 0],
          ]);
          expect(d.windows[0]!.retryAfterMs).toBe(0);
          expect(d.windows[1]!.retryAfterMs).toBeGreaterThan(0);
        }
        const info = await l.getLimitInfo(id);
        expect(info.windows.map((w) => w.remaining)).toEqual([7, 0]);
      });

      it('a rejection consumes nothing', async () => {
        const windows = [
          { name: 'burst', limit: 2, windowMs: 60_000 },
          { name: 'hourly', limit: 100, windowMs: HOUR },
        ];
        const l = limiter(windows, algorithm);
        const id = key();
        expect(await l.isAllowed(id)).toBe(true);
        expect(await l.isAllowed(id)).toBe(true);
        const before = await store.peek(l.keyFor(id), l.windows, algorithm);
        for (let i = 0; i < 20; i++) expect(await l.isAllowed(id)).toBe(false);
        const after = await store.peek(l.keyFor(id), l.windows, algorithm);
        expect(after.windows.map((w) => w.remaining)).toEqual([0, 98]);
        // Nothing about the windows moved: same oldest hit, same wait.
        expect(after.windows.map((w) => w.resetAt)).toEqual(before.windows.map((w) => w.resetAt));
        if (h.clock) expect(after.windows[0]!.retryAfterMs).toBe(before.windows[0]!.retryAfterMs);
      });

      it('peek counts nothing, and answers for an unknown key', async () => {
        const windows = [{ name: 'minute', limit: 4, windowMs: 60_000 }];
        const l = limiter(windows, algorithm);
        const id = key();
        const fresh = await store.peek(l.keyFor(id), l.windows, algorithm);
        expect(fresh.allowed).toBe(true);
        expect(fresh.windows[0]).toMatchObject({ name: 'minute', limit: 4, remaining: 4, retryAfterMs: 0 });
        for (let i = 0; i < 10; i++) await store.peek(l.keyFor(id), l.windows, algorithm);
        expect((await l.check(id)).windows[0]!.remaining).toBe(3);
        for (let i = 0; i < 10; i++) expect((await l.getLimitInfo(id)).windows[0]!.remaining).toBe(3);
        expect(await l.getRetryAfter(id)).toBe(0);
      });

      it.skipIf(h.resets === false)(
        'reset forgets every counter of the key, and only of that key',
        async () => {
          const windows = [
            { name: 'hourly', limit: 2, windowMs: HOUR },
            { name: 'daily', limit: 5, windowMs: DAY },
          ];
          const l = limiter(windows, algorithm);
          const [a, b] = [key(), key()];
          for (let i = 0; i < 3; i++) {
            await l.check(a);
            await l.check(b);
          }
          expect(await l.isAllowed(a)).toBe(false);
          await l.reset(a);
          const d = await l.check(a);
          expect(d.allowed).toBe(true);
          expect(d.windows.map((w) => w.remaining)).toEqual([1, 4]);
          expect(await l.isAllowed(b)).toBe(false);
        },
      );

      it('keys count apart', async () => {
        const l = limiter([{ name: 'minute', limit: 1, windowMs: 60_000 }], algorithm);
        const [a, b] = [key(), key()];
        expect(await l.isAllowed(a)).toBe(true);
        expect(await l.isAllowed(a)).toBe(false);
        expect(await l.isAllowed(b)).toBe(true);
      });

      it('a decision describes every window, in order', async () => {
        const windows = [
          { name: 'hourly', limit: 3, windowMs: HOUR },
          { name: 'burst', limit: 2, windowMs: 60_000 },
        ];
        const l = limiter(windows, algorithm);
        const id = key();
        const d1 = await l.check(id);
        const now = d1.now!;
        expect(Math.abs(now - (h.clock?.now() ?? Date.now()))).toBeLessThan(5_000);
        expect(d1.windows.map((w) => [w.name, w.limit, w.windowMs, w.remaining, w.retryAfterMs])).toEqual([
          ['hourly', 3, HOUR, 2, 0],
          ['burst', 2, 60_000, 1, 0],
        ]);
        for (const w of d1.windows) {
          expect(w.resetAt).toBeGreaterThan(now);
          expect(w.resetAt).toBeLessThanOrEqual(now + 2 * w.windowMs);
        }
        // The hit that fills a window leaves it needing a wait, even though this request was admitted.
        const d2 = await l.check(id);
        expect(d2.allowed).toBe(true);
        expect(d2.windows[1]!.remaining).toBe(0);
        expect(d2.windows[1]!.retryAfterMs).toBeGreaterThan(0);
        expect(d2.windows[1]!.retryAfterMs).toBeLessThanOrEqual(2 * 60_000);
      });

      it('a request of cost N counts N in every window', async () => {
        const windows = [
          { name: 'minute', limit: 10, windowMs: 60_000 },
          { name: 'hourly', limit: 100, windowMs: HOUR },
        ];
        const l = limiter(windows, algorithm);
        const id = key();
        let d = await l.check(id, 5);
        expect(d.allowed).toBe(true);
        expect(d.windows.map((w) => w.remaining)).toEqual([5, 95]);
        d = await l.check(id, 5);
        expect(d.allowed).toBe(true);
        expect(d.windows.map((w) => w.remaining)).toEqual([0, 90]);
        expect(d.windows[0]!.retryAfterMs).toBeGreaterThan(0);
        d = await l.check(id);
        expect(d.allowed).toBe(false);
        expect(d.windows.map((w) => w.remaining)).toEqual([0, 90]);
        expect((await l.getLimitInfo(id)).windows.map((w) => w.remaining)).toEqual([0, 90]);
      });

      it('a request of cost N is refused when fewer than N remain, and consumes nothing', async () => {
        const windows = [
          { name: 'minute', limit: 10, windowMs: 60_000 },
          { name: 'hourly', limit: 100, windowMs: HOUR },
        ];
        const l = limiter(windows, algorithm);
        const id = key();
        expect((await l.check(id, 7)).windows.map((w) => w.remaining)).toEqual([3, 93]);
        const before = await store.peek(l.keyFor(id), l.windows, algorithm);
        for (let i = 0; i < 5; i++) {
          const d = await l.check(id, 4);
          expect(d.allowed).toBe(false);
          // Units left, not requests: three remain, just not four.
          expect(d.windows.map((w) => w.remaining)).toEqual([3, 93]);
          expect(d.windows[0]!.retryAfterMs).toBeGreaterThan(0);
          expect(d.windows[1]!.retryAfterMs).toBe(0);
        }
        const after = await store.peek(l.keyFor(id), l.windows, algorithm);
        expect(after.allowed).toBe(true);
        expect(after.windows.map((w) => w.remaining)).toEqual([3, 93]);
        expect(after.windows.map((w) => w.resetAt)).toEqual(before.windows.map((w) => w.resetAt));
        // A cheaper request still fits, exactly to the limit.
        const d = await l.check(id, 3);
        expect(d.allowed).toBe(true);
        expect(d.windows.map((w) => w.remaining)).toEqual([0, 90]);
        expect((await l.check(id)).allowed).toBe(false);
      });

      it('a cost above the limit is never admitted, waits a whole window, and consumes nothing', async () => {
        const windows = [
          { name: 'minute', limit: 3, windowMs: 60_000 },
          { name: 'hourly', limit: 50, windowMs: HOUR },
        ];
        const l = limiter(windows, algorithm);
        const id = key();
        for (const cost of [4, 51, 1_000_000]) {
          const d = await l.check(id, cost);
          expect(d.allowed).toBe(false);
          expect(d.windows.map((w) => w.remaining)).toEqual([3, 50]);
          expect(d.windows[0]!.retryAfterMs).toBe(60_000);
          // Over the hourly limit too only from 51 on.
          expect(d.windows[1]!.retryAfterMs).toBe(cost > 50 ? HOUR : 0);
        }
        const d = await l.check(id, 3);
        expect(d.allowed).toBe(true);
        expect(d.windows.map((w) => w.remaining)).toEqual([0, 47]);
      });

      it('a cost of 1 and a cost of N share one count', async () => {
        const l = limiter([{ name: 'minute', limit: 6, windowMs: 60_000 }], algorithm);
        const id = key();
        expect((await l.check(id)).windows[0]!.remaining).toBe(5);
        expect((await l.check(id, 4)).windows[0]!.remaining).toBe(1);
        expect((await l.check(id, 2)).allowed).toBe(false);
        expect((await l.check(id)).windows[0]!.remaining).toBe(0);
      });

      it('refuses a cost that is not a positive integer, and counts nothing', async () => {
        const l = limiter([{ name: 'minute', limit: 5, windowMs: 60_000 }], algorithm);
        const id = key();
        for (const cost of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
          await expect(l.check(id, cost)).rejects.toThrow(RangeError);
          await expect(store.hit(l.keyFor(id), l.windows, algorithm, cost)).rejects.toThrow(RangeError);
        }
        expect((await l.getLimitInfo(id)).windows[0]!.remaining).toBe(5);
      });
    });

    if (h.clock) {
      const clock = h.clock;

      it('sliding-log: retry_after is the time until the oldest hit leaves; then exactly one fits', async () => {
        const l = limiter([{ name: 'second', limit: 3, windowMs: 1_000 }], 'sliding-log');
        const id = key();
        const t0 = clock.now();
        for (let i = 0; i < 3; i++) {
          expect(await l.isAllowed(id)).toBe(true);
          clock.advance(100);
        }
        let d = await l.check(id); // t0 + 300
        expect(d.allowed).toBe(false);
        expect(d.windows[0]).toMatchObject({ remaining: 0, resetAt: t0 + 1_000, retryAfterMs: 700 });
        clock.advance(699);
        expect(await l.isAllowed(id)).toBe(false);
        clock.advance(1); // t0 + 1000: the hit of t0 has left (t - W, t]
        d = await l.check(id);
        expect(d.allowed).toBe(true);
        expect(d.windows[0]).toMatchObject({ remaining: 0, resetAt: t0 + 1_100, retryAfterMs: 100 });
        expect(await l.isAllowed(id)).toBe(false);
        clock.advance(1_000);
        expect((await l.check(id)).windows[0]!.remaining).toBe(2);
      });

      it('sliding-log: a rejection does not push the window back', async () => {
        const l = limiter([{ name: 'second', limit: 2, windowMs: 1_000 }], 'sliding-log');
        const id = key();
        await l.check(id);
        await l.check(id);
        for (let i = 0; i < 9; i++) {
          clock.advance(100);
          expect(await l.isAllowed(id)).toBe(false);
        }
        clock.advance(100); // 1000 ms after the first two
        expect(await l.isAllowed(id)).toBe(true);
        expect(await l.isAllowed(id)).toBe(true);
        expect(await l.isAllowed(id)).toBe(false);
      });

      it("sliding-counter: the previous window's weight fades with the overlap", async () => {
        const W = 1_000;
        const l = limiter([{ name: 'second', limit: 4, windowMs: W }], 'sliding-counter');
        const id = key();
        clock.set(Math.ceil(clock.now() / W) * W + 10 * W); // the start of a fixed window
        const start = clock.now();
        for (let i = 0; i < 4; i++) expect(await l.isAllowed(id)).toBe(true);
        let d = await l.check(id);
        expect(d.allowed).toBe(false);
        // cur 4 ≥ limit: wait for the roll (1000 ms), then until 4·(W - e)/W + 1 ≤ 4, e ≥ 250.
        expect(d.windows[0]).toMatchObject({ remaining: 0, resetAt: start + 2 * W, retryAfterMs: 1_250 });
        clock.advance(1_249);
        expect(await l.isAllowed(id)).toBe(false);
        clock.advance(1);
        d = await l.check(id); // e = 250: 4 · 0.75 + 1 = 4
        expect(d.allowed).toBe(true);
        expect(d.windows[0]).toMatchObject({ remaining: 0, retryAfterMs: 250 });
        clock.advance(250); // e = 500: 4 · 0.5 + 1 = 3, so one more fits
        d = await l.check(id);
        expect(d.allowed).toBe(true);
        expect(d.windows[0]!.remaining).toBe(0);
        const peek = () => store.peek(l.keyFor(id), l.windows, 'sliding-counter');
        clock.set(start + 2 * W); // those two hits are the previous window now, at full weight
        expect((await peek()).windows[0]).toMatchObject({ remaining: 2, resetAt: start + 3 * W });
        clock.set(start + 2 * W + 500); // at half weight
        expect((await peek()).windows[0]).toMatchObject({ remaining: 3, resetAt: start + 3 * W });
        clock.set(start + 3 * W); // out of reach
        expect((await peek()).windows[0]).toMatchObject({
          remaining: 4,
          resetAt: start + 3 * W,
          retryAfterMs: 0,
        });
      });

      it('sliding-log: retry_after for cost N is the time until N units have left', async () => {
        const l = limiter([{ name: 'second', limit: 5, windowMs: 1_000 }], 'sliding-log');
        const id = key();
        const t0 = clock.now();
        expect((await l.check(id, 2)).allowed).toBe(true); // units at t0, t0
        clock.advance(100);
        expect((await l.check(id, 2)).allowed).toBe(true); // t0 + 100, t0 + 100
        clock.advance(100);
        let d = await l.check(id); // t0 + 200: the fifth unit fills the window
        expect(d.windows[0]).toMatchObject({ remaining: 0, resetAt: t0 + 1_000, retryAfterMs: 800 });
        clock.advance(100); // t0 + 300
        // Three units must leave for three to fit: the third oldest is at t0 + 100.
        d = await l.check(id, 3);
        expect(d.allowed).toBe(false);
        expect(d.windows[0]).toMatchObject({ remaining: 0, resetAt: t0 + 1_000, retryAfterMs: 800 });
        expect((await l.check(id, 2)).windows[0]!.retryAfterMs).toBe(700);
        clock.advance(799);
        expect((await l.check(id, 3)).allowed).toBe(false);
        clock.advance(1); // t0 + 1100: four units have left, one (t0 + 200) is still in
        d = await l.check(id, 3);
        expect(d.allowed).toBe(true);
        // 4 units held (t0 + 200, three at t0 + 1100): three more need the first three to leave.
        expect(d.windows[0]).toMatchObject({ remaining: 1, resetAt: t0 + 1_200, retryAfterMs: 1_000 });
        expect((await l.check(id, 2)).windows[0]!.retryAfterMs).toBe(100);
      });

      it('sliding-counter: retry_after for cost N, before and after the roll', async () => {
        const W = 1_000;
        const l = limiter([{ name: 'second', limit: 4, windowMs: W }], 'sliding-counter');
        const id = key();
        clock.set(Math.ceil(clock.now() / W) * W + 10 * W); // the start of a fixed window
        const start = clock.now();
        expect((await l.check(id, 2)).allowed).toBe(true);
        expect((await l.check(id, 2)).allowed).toBe(true);
        // cur 4: three fit only after the roll, once 4·(W - e)/W + 3 ≤ 4, e ≥ 750.
        let d = await l.check(id, 3);
        expect(d.allowed).toBe(false);
        expect(d.windows[0]).toMatchObject({ remaining: 0, retryAfterMs: 1_750 });
        clock.advance(1_000); // e = 0 of the next window: cur 0, prev 4. Two fit once 4·(W - e)/W ≤ 2.
        d = await l.check(id, 2);
        expect(d.allowed).toBe(false);
        expect(d.windows[0]).toMatchObject({ remaining: 0, retryAfterMs: 500 });
        clock.advance(499);
        expect((await l.check(id, 2)).allowed).toBe(false);
        clock.advance(1); // e = 500
        expect((await l.check(id, 2)).allowed).toBe(true);
        clock.set(start + W + 749); // cur 2, prev 4: 4·0.251 + 2 + 3 > 4
        expect((await l.check(id, 3)).allowed).toBe(false);
        clock.set(start + 2 * W + 750); // cur 0, prev 2: 2·0.25 + 3 ≤ 4
        expect((await l.check(id, 3)).allowed).toBe(true);
      });

      it('several windows: retry_after waits for the window that stays full longest', async () => {
        const windows = [
          { name: 'short', limit: 1, windowMs: 1_000 },
          { name: 'long', limit: 2, windowMs: 10_000 },
        ];
        const l = limiter(windows, 'sliding-log');
        const id = key();
        await l.check(id);
        clock.advance(1_000);
        await l.check(id);
        const d = await l.check(id);
        expect(d.allowed).toBe(false);
        expect(d.windows.map((w) => w.retryAfterMs)).toEqual([1_000, 9_000]);
        expect(await l.getRetryAfter(id)).toBe(9);
        clock.advance(9_000);
        expect(await l.isAllowed(id)).toBe(true);
      });

      it('sliding-counter past 2^53 (limit × length): still exact at its boundaries', async () => {
        // A million days at 2000: limit × W ≈ 1.7e17, the kind of window start-up used to refuse.
        const W = 86_400_000 * 1_000_000;
        const L = 2_000;
        const l = limiter([{ name: 'eon', limit: L, windowMs: W }], 'sliding-counter');
        const id = key();
        clock.set(Math.ceil(clock.now() / W) * W); // the start of a fixed window
        const start = clock.now();
        const first = await Promise.all(Array.from({ length: L }, () => l.check(id)));
        expect(first.filter((d) => d.allowed)).toHaveLength(L);
        expect(first.at(-1)!.windows[0]!.remaining).toBe(0);
        expect((await l.check(id)).allowed).toBe(false);
        // Half-way through the next window those hits weigh L/2, so exactly L/2 more fit.
        clock.set(start + W + W / 2);
        const second = await Promise.all(Array.from({ length: L / 2 + 1 }, () => l.check(id)));
        expect(second.filter((d) => d.allowed)).toHaveLength(L / 2);
        expect(second.at(-1)!.allowed).toBe(false);
      });
    } else {
      it.each(ALGORITHMS)('%s: windows slide in real time', async (algorithm) => {
        const W = algorithm === 'sliding-log' ? 400 : 300;
        const l = limiter([{ name: 'short', limit: 3, windowMs: W }], algorithm);
        const id = key();
        let admitted = 0;
        while (admitted < 3) if (await l.isAllowed(id)) admitted++;
        const denied = await l.check(id);
        expect(denied.allowed).toBe(false);
        // sliding-log frees room within W; sliding-counter within 2W (the count decays over the next window).
        expect(denied.windows[0]!.retryAfterMs).toBeGreaterThan(0);
        expect(denied.windows[0]!.retryAfterMs).toBeLessThanOrEqual(2 * W);
        await waitFor(async () => (await store.peek(l.keyFor(id), l.windows, algorithm)).allowed, {
          timeoutMs: 5_000,
          intervalMs: 25,
          what: 'the window to slide',
        });
        expect(await l.isAllowed(id)).toBe(true);
      });
    }
  });
}

rateLimitStoreConformance(memoryHarness(new ManualClock()));
rateLimitStoreConformance(memoryHarness(null));
rateLimitStoreConformance(redisHarness(new ManualClock()));
rateLimitStoreConformance(redisHarness(null));
rateLimitStoreConformance(redisHarness(new ManualClock(), true));
rateLimitStoreConformance(guardedHarness(new ManualClock(), false));
rateLimitStoreConformance(guardedHarness(new ManualClock(), true));
rateLimitStoreConformance(remoteHarness(new ManualClock()));
