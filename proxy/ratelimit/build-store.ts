// Builds the rate limit store a policy's `store:` section asks for: the memory store, or Redis
// behind a breaker with the on_error fallback, plus what a start or reload needs around it (a
// bounded wait for the first connection, and a close that also ends the connection).
import { CircuitBreaker } from '../../core/breaker/circuit-breaker.js';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { Policy } from '../config/schema.js';
import { sectionHash } from '../config/section-hash.js';
import type { ProxyMetrics } from '../observability/metrics.js';
import { within } from '../within.js';
import { GuardedStore } from './guarded-store.js';
import { MemoryRateLimitStore } from './memory-store.js';
import { connectRedis } from './redis-client.js';
import { RedisRateLimitStore } from './redis-store.js';
import type { RateLimitStore } from './store.js';

/** A store and what it was built from, so a reload that leaves `store:` alone keeps its counters. */
export interface StoreBundle {
  /** sectionHash of the `store:` section it was built from; see storeHash. */
  readonly hash: string;
  readonly store: RateLimitStore;
  readonly degraded: () => boolean;
  /**
   * Settles once the store has either connected or failed its first attempt (bounded), so the first
   * requests neither race the connection (commands fail fast while disconnected) nor wait on a dead one.
   */
  readonly ready: Promise<void>;
  /** Closes the store and whatever connection it was built with. */
  close(): Promise<void>;
}

/** The breaker in front of Redis: three failures open it, one probe a second finds out it is back. */
export const STORE_BREAKER = {
  failureThreshold: 3,
  successThreshold: 1,
  timeoutMs: 1_000,
  halfOpenMaxCalls: 1,
} as const;
/** Longest a start or reload waits for a new Redis connection before serving with it anyway. */
const STORE_CONNECT_WAIT_MS = 5_000;

/** What tells a reload whether its `store:` section changed (and so whether to build a new store). */
export function storeHash(policy: Policy): string {
  return sectionHash(policy.store);
}

function firstConnection(redis: ReturnType<typeof connectRedis>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      redis.off('ready', done);
      redis.off('error', done);
      resolve();
    };
    const timer = setTimeout(done, STORE_CONNECT_WAIT_MS);
    redis.once('ready', done);
    redis.once('error', done);
  });
}

export interface BuildStoreOptions {
  readonly clock: Clock;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  /** ioredis auto-pipelining (FLOODGATE_REDIS_AUTOPIPELINING=1). */
  readonly autoPipelining: boolean;
  /** Told whenever the shared store's health may have changed (a cluster worker tells its primary). */
  readonly onHealthChange?: () => void;
}

export function buildStore(
  policy: Policy,
  { clock, metrics, logger, autoPipelining, onHealthChange }: BuildStoreOptions,
): StoreBundle {
  const s = policy.store;
  const hash = storeHash(policy);
  // Label handles made once: under a flood of new identities this runs on every request.
  const evicted = [false, true].map((l) => metrics.storeEvictions.labels({ limited: String(l) }));
  const memory = (): MemoryRateLimitStore =>
    new MemoryRateLimitStore({ clock, maxKeys: s.maxKeys, onEvict: (l) => evicted[l ? 1 : 0]!.inc() });
  if (s.type === 'memory') {
    const store = memory();
    return { hash, store, degraded: () => false, ready: Promise.resolve(), close: () => store.close() };
  }
  const redis = connectRedis(s.url, {
    commandTimeoutMs: s.timeoutMs,
    autoPipelining,
    cluster: s.cluster,
  });
  const breaker = new CircuitBreaker({ name: 'rate-limit-store', clock, ...STORE_BREAKER });
  breaker.on('open', () =>
    logger.error({ store: 'redis' }, 'rate limit store unavailable; on_error=' + s.onError),
  );
  breaker.on('close', () => logger.info({ store: 'redis' }, 'rate limit store recovered'));
  if (onHealthChange) breaker.on('stateChange', onHealthChange);
  const primary = new RedisRateLimitStore({
    redis,
    prefix: s.prefix,
    timeoutMs: s.cluster ? s.timeoutMs : undefined,
    refusalCache: s.refusalCache,
  });
  const store = new GuardedStore({
    // The client's commandTimeout already bounds each call at store.timeout; a second timer here
    // would only cost the hot path a promise and a timer per request. Except on a cluster: its client
    // queues commands while it (re)discovers the nodes, and that queue knows no commandTimeout.
    primary,
    breaker,
    fallback: s.onError === 'local' ? memory() : null,
    observe: (seconds, err) => {
      metrics.storeDuration.observe(seconds);
      if (err !== undefined) metrics.storeErrors.inc();
    },
  });
  return {
    hash,
    store,
    degraded: () => !store.healthy,
    // Bounded like the connection: a Redis that does not answer gets decided by on_error, not waited on.
    ready: firstConnection(redis).then(() => within(primary.warm(), STORE_CONNECT_WAIT_MS)),
    async close() {
      await store.close();
      // The store does not own its client. QUIT lets commands already sent finish (a reload retires a
      // store that requests may still be using); a Redis that does not answer gets no longer than a call.
      await Promise.race([
        redis.quit().catch(() => undefined),
        new Promise((r) => setTimeout(r, s.timeoutMs).unref()),
      ]);
      redis.disconnect();
    },
  };
}
