// The shared RateLimitStore: counters in Redis, so every proxy sees the same counts.
//
// A request costs ONE round trip for all of its windows, and usually less: the decisions a proxy takes
// in one turn of the event loop (every request parsed from the sockets that were readable) go to Redis
// together, as one EVALSHA of lua/<algorithm>.lua per window set, which decides them in order. Each
// decision checks every window and counts the request in all of them or in none, atomically (a script
// runs alone). One call instead of dozens is what makes a shared limit cheap: it spares the client's
// per-command work and Redis's per-call overhead (bench/README.md has the figures). The script reads
// the server's TIME, so proxies with skewed clocks agree on the windows.
//
// Key layout (the identity `key` is already hashed by the limiter; raw ids never reach Redis):
//   sliding-log      <prefix>{<key>}:log               ZSET, score = epoch ms of a counted hit, the hits
//                                                       of the longest window (shorter ones count its tail),
//                                                       PEXPIRE = the longest window's length
//   sliding-counter  <prefix>{<key>}:s                 STRING, 3 integers per window (see the script),
//                                                       PX = until the longest window has rolled twice
// The `{<key>}` hash tag keeps an identity's keys in one Cluster slot. On a Cluster, different identities
// live in different slots, which one script cannot span, so each decision is a call of its own there.
// (A `}` inside the key just shortens the tag; the keys still share it.)
//
// sliding-counter error bound: the estimate prev·(W - e)/W + cur assumes the previous fixed window's hits
// were spread evenly. It differs from the exact sliding count by less than the previous window's count
// (≤ limit). So each fixed window admits at most `limit`, and any span of W ms at most 2·limit − 1: that
// worst case needs a whole window's hits bunched at its very end. Under evenly spread traffic it admits
// exactly `limit` per W. Concurrent hits are still counted exactly: the script is atomic.
//
// With `refusalCache` (the policy's store.refusal_cache, off by default), refusals are remembered (the
// over-limit cache, as Envoy's ratelimit has it): once Redis has refused an
// identity, its next hits are refused here, without a call, until the earliest moment Redis could admit
// it again (the decision's largest retry-after, counted from when the call was sent, so never later than
// Redis's own clock), capped at REFUSAL_CACHE_MAX_MS. That is exact: other proxies can only add hits, and
// a refused hit counts nowhere, so Redis would have refused every one of them too. What it cannot see is
// a reset made through another store: that reaches this proxy within the cap. A reset
// through this store, a policy whose limits changed (new limiter scope, so new keys) and a new store
// (changed `store:` section) all start without it. An identity flooding the proxy over its limit thus
// costs Redis one call a second, not one per request. Opt-in, because two things differ from asking
// Redis every time: a reset or data loss outside this store (another process's reset, a FLUSHALL)
// is seen up to REFUSAL_CACHE_MAX_MS late, and a replayed refusal's other windows show their counts as
// Redis last gave them (its retry-after and `now` are aged exactly). A refusal is replayed only to a
// request of the same cost: one of cost N refused says nothing of a cheaper one, and the retry-after it
// carries is the wait for N.
//
// Errors (connection, timeout, script errors) reject every decision of the failed call; the proxy
// applies on_error.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import type { Clock } from '../../core/clock.js';
import { FloodgateError } from '../../core/errors.js';
import { projectPath } from '../../core/paths.js';
import {
  type Algorithm,
  checkCost,
  type Decision,
  type RateLimitStore,
  type WindowSpec,
  type WindowState,
} from './store.js';

export interface RedisRateLimitStoreOptions {
  readonly redis: Redis | Cluster;
  /** Prepended to every key, e.g. "floodgate:". */
  readonly prefix?: string;
  /**
   * Bound on one call, enforced here by racing the command (the proxy also bounds its whole store
   * step). A call that times out may still be counted by Redis later. Unset: no bound beyond the
   * client's own (ioredis `commandTimeout`, and its offline queue, which waits for a reconnect).
   */
  readonly timeoutMs?: number;
  /**
   * For deterministic tests and simulations only: pass this clock's time to the script instead of
   * using the server's TIME (and time the refusal cache by it). Production leaves it unset, so that
   * every proxy shares one clock.
   */
  readonly clock?: Clock;
  /** Replay Redis's refusals locally for up to REFUSAL_CACHE_MAX_MS (see the header comment). */
  readonly refusalCache?: boolean;
}

/** A refusal from Redis, replayed without a call until `until` (local ms: see the header comment). */
interface Refusal {
  readonly windows: readonly WindowSpec[];
  /** The cost of the refused request: the only one the refusal answers for. */
  readonly cost: number;
  readonly decision: Decision;
  /** When the call that refused was sent. */
  readonly sentAt: number;
  readonly until: number;
}

export class RateLimitStoreTimeoutError extends FloodgateError<'rate_limit_store_timeout'> {
  constructor(readonly timeoutMs: number) {
    super(
      'RateLimitStoreTimeoutError',
      'rate_limit_store_timeout',
      `rate limit store call exceeded ${timeoutMs} ms`,
    );
  }
}

interface Script {
  readonly lua: string;
  readonly sha: string;
}

/** What a window set turns into on the wire, computed once per set (the limiter's array is frozen). */
interface Prepared {
  /** ARGV after mode and now: W, limit per window. */
  readonly tail: readonly string[];
  /** The batch still taking decisions, per algorithm and mode (see slot()). */
  readonly open: (Batch | undefined)[];
}

/** Decisions that go to Redis in one call: same window set, algorithm and mode; one key each. */
class Batch {
  readonly keys: string[] = [];
  /** Per key, its decision's cost (the script's last ARGV). */
  readonly costs: number[] = [];
  resolve!: (reply: number[]) => void;
  reject!: (err: unknown) => void;
  readonly reply = new Promise<number[]>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });
  /** Local time the call was sent (see Refusal). */
  sentAt = 0;
  constructor(
    readonly prepared: Prepared,
    /** Its place in prepared.open while it takes decisions. */
    readonly slot: number,
    readonly script: Script,
    readonly mode: '0' | '1',
    readonly now: string,
  ) {}
}

// Not the ':c' and ':l:<window>' of earlier layouts (a hash; a ZSET per window): a GET on one of those
// would fail, and old keys simply expire.
const COUNTER_SUFFIX = ':s';
const LOG_SUFFIX = ':log';
/**
 * Decisions per call at most. A script blocks Redis while it runs (a few µs per decision), so a burst
 * is split rather than stalling every other client for milliseconds.
 */
const MAX_BATCH = 128;
/**
 * Longest a refusal is replayed without asking Redis: the delay with which a reset made through another
 * proxy is seen here, and the rate (one call a second) at which an identity over its limit reaches Redis.
 */
export const REFUSAL_CACHE_MAX_MS = 1_000;
/** Refusals remembered at most; beyond, the oldest is forgotten (and the next hit simply asks Redis). */
const REFUSAL_CACHE_SIZE = 10_000;

function loadScript(name: string): Script {
  // Read from the source tree, which compiled code (dist/) finds by walking up to package.json.
  const lua = readFileSync(projectPath('proxy', 'ratelimit', 'lua', `${name}.lua`), 'utf8');
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** Index into Prepared.open. */
function slot(algorithm: Algorithm, mode: '0' | '1'): number {
  return (algorithm === 'sliding-log' ? 0 : 2) + (mode === '1' ? 0 : 1);
}

export class RedisRateLimitStore implements RateLimitStore {
  private readonly redis: Redis | Cluster;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly clock: Clock | null;
  /** A Cluster cannot run one script over many identities' slots: one decision per call there. */
  private readonly maxBatch: number;
  private readonly log = loadScript('sliding-log');
  private readonly counter = loadScript('sliding-counter');
  private readonly prepared = new WeakMap<readonly WindowSpec[], Prepared>();
  /** Batches waiting for the end of this turn of the event loop. */
  private readonly queued: Batch[] = [];
  /** Identities Redis refused, by Redis key (which names the algorithm). */
  private readonly refusals = new Map<string, Refusal>();
  /** Local time for the refusal cache: the pinned clock, else a monotonic one. */
  private readonly localNow: () => number;
  private readonly cacheRefusals: boolean;

  constructor({
    redis,
    prefix = '',
    timeoutMs = 0,
    clock,
    refusalCache = false,
  }: RedisRateLimitStoreOptions) {
    this.redis = redis;
    this.prefix = prefix;
    this.timeoutMs = timeoutMs;
    this.clock = clock ?? null;
    this.maxBatch = redis.isCluster ? 1 : MAX_BATCH;
    this.localNow = clock === undefined ? () => performance.now() : () => clock.now();
    this.cacheRefusals = refusalCache;
  }

  /**
   * Loads both scripts on every node that runs them (each master of a cluster), so the first decisions
   * pay neither a NOSCRIPT round trip nor a node's first connection: cold, a burst of them can outlast
   * store.timeout and fall to on_error on a proxy (or cluster worker) that just started.
   */
  async warm(): Promise<void> {
    const nodes = this.redis.isCluster ? (this.redis as Cluster).nodes('master') : [this.redis as Redis];
    await Promise.all(nodes.flatMap((n) => [this.log, this.counter].map((s) => n.script('LOAD', s.lua))));
  }

  hit(key: string, windows: readonly WindowSpec[], algorithm: Algorithm, cost = 1): Promise<Decision> {
    try {
      checkCost(cost);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.refusals.size > 0) {
      const replay = this.replay(this.keyFor(key, algorithm), windows, cost);
      if (replay !== null) return Promise.resolve(replay);
    }
    return this.enqueue(key, windows, algorithm, '1', cost);
  }

  peek(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision> {
    return this.enqueue(key, windows, algorithm, '0', 1);
  }

  /** Deletes the identity's counters, both algorithms' (a route may have changed algorithm). */
  reset(key: string): Promise<void> {
    const base = this.prefix + '{' + key + '}';
    this.refusals.delete(base + COUNTER_SUFFIX);
    this.refusals.delete(base + LOG_SUFFIX);
    return this.bound(this.redis.unlink(base + COUNTER_SUFFIX, base + LOG_SUFFIX)).then(() => undefined);
  }

  /** The client belongs to the caller, who closes it. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The Redis key that holds `key`'s counters for this algorithm (tests, tooling). */
  keyFor(key: string, algorithm: Algorithm): string {
    return this.prefix + '{' + key + '}' + (algorithm === 'sliding-log' ? LOG_SUFFIX : COUNTER_SUFFIX);
  }

  /** Adds the decision to the open batch of its kind, which is sent when this turn's work is done. */
  private enqueue(
    key: string,
    windows: readonly WindowSpec[],
    algorithm: Algorithm,
    mode: '0' | '1',
    cost: number,
  ): Promise<Decision> {
    const p = this.prepare(windows);
    const s = slot(algorithm, mode);
    const now = this.clock === null ? '' : String(this.clock.now());
    let batch = p.open[s];
    if (batch === undefined || batch.keys.length >= this.maxBatch || batch.now !== now) {
      batch = new Batch(p, s, algorithm === 'sliding-log' ? this.log : this.counter, mode, now);
      p.open[s] = batch;
      // setImmediate, not nextTick: it runs after every socket that was readable has been read, so
      // one call carries the decisions of all the requests that arrived together.
      if (this.queued.push(batch) === 1) setImmediate(this.flush);
    }
    const offset = 1 + batch.keys.length * (1 + 3 * windows.length);
    const redisKey = this.keyFor(key, algorithm);
    batch.keys.push(redisKey);
    batch.costs.push(cost);
    const b = batch;
    return batch.reply.then((reply) => {
      const decision = toDecision(reply, offset, windows);
      if (!decision.allowed) {
        if (this.cacheRefusals) this.remember(redisKey, windows, cost, decision, b.sentAt);
      } else if (mode === '0') this.refusals.delete(redisKey);
      return decision;
    });
  }

  /** Keeps a refusal to replay (see the header comment). */
  private remember(
    redisKey: string,
    windows: readonly WindowSpec[],
    cost: number,
    decision: Decision,
    sentAt: number,
  ): void {
    let retryMs = 0;
    for (const w of decision.windows) if (w.retryAfterMs > retryMs) retryMs = w.retryAfterMs;
    if (retryMs <= 0) return;
    this.refusals.delete(redisKey);
    if (this.refusals.size >= REFUSAL_CACHE_SIZE) this.refusals.delete(this.refusals.keys().next().value!);
    this.refusals.set(redisKey, {
      windows,
      cost,
      decision,
      sentAt,
      until: sentAt + Math.min(retryMs, REFUSAL_CACHE_MAX_MS),
    });
  }

  /**
   * The remembered refusal of `redisKey` for this window set and cost, aged to now; null when there is
   * none.
   */
  private replay(redisKey: string, windows: readonly WindowSpec[], cost: number): Decision | null {
    const r = this.refusals.get(redisKey);
    if (r === undefined || r.windows !== windows || r.cost !== cost) return null;
    const now = this.localNow();
    if (now >= r.until) {
      this.refusals.delete(redisKey);
      return null;
    }
    // The same answer Redis gave, with its times moved on by what has passed since.
    const elapsed = Math.max(0, Math.floor(now - r.sentAt));
    const states = r.decision.windows.map((w) => ({
      ...w,
      retryAfterMs: Math.max(0, w.retryAfterMs - elapsed),
    }));
    return {
      allowed: false,
      windows: states,
      now: r.decision.now === undefined ? undefined : r.decision.now + elapsed,
    };
  }

  private readonly flush = (): void => {
    const batches = this.queued.splice(0);
    for (const b of batches) {
      if (b.prepared.open[b.slot] === b) b.prepared.open[b.slot] = undefined;
      this.send(b);
    }
  };

  private send(b: Batch): void {
    b.sentAt = this.localNow();
    const args: (string | number)[] = [b.script.sha, b.keys.length];
    for (const k of b.keys) args.push(k);
    args.push(b.mode, b.now);
    for (const a of b.prepared.tail) args.push(a);
    for (const c of b.costs) args.push(c);
    const call = this.redis.call('evalsha', args).then(undefined, (err: unknown) => {
      // NOSCRIPT: a restarted or flushed server. EVAL once, which also caches the script again.
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      args[0] = b.script.lua;
      return this.redis.call('eval', args);
    });
    this.bound(call).then((reply) => b.resolve(reply as number[]), b.reject);
  }

  private bound<T>(promise: Promise<T>): Promise<T> {
    const ms = this.timeoutMs;
    if (ms <= 0) return promise;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new RateLimitStoreTimeoutError(ms)), ms);
      promise.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  private prepare(windows: readonly WindowSpec[]): Prepared {
    let p = this.prepared.get(windows);
    if (p === undefined) {
      const tail: string[] = [];
      for (const w of windows) tail.push(String(w.windowMs), String(w.limit));
      p = { tail, open: [] };
      this.prepared.set(windows, p);
    }
    return p;
  }
}

/** Decision d of a batch's reply, whose windows start at `offset` (after `now` and its `allowed`). */
function toDecision(reply: number[], offset: number, windows: readonly WindowSpec[]): Decision {
  const states = new Array<WindowState>(windows.length);
  for (let j = 0; j < windows.length; j++) {
    const w = windows[j]!;
    const o = offset + 1 + j * 3;
    states[j] = {
      name: w.name,
      limit: w.limit,
      windowMs: w.windowMs,
      remaining: reply[o]!,
      resetAt: reply[o + 1]!,
      retryAfterMs: reply[o + 2]!,
    };
  }
  return { allowed: reply[offset] === 1, windows: states, now: reply[0]! };
}
