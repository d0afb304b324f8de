// The shared RateLimitStore: counters in Redis, so every proxy sees the same counts.
//
// One request costs ONE round trip for all of its windows: one EVALSHA of lua/<algorithm>.lua, which
// checks every window and counts the request in all of them or in none, atomically (a script runs alone).
// The script reads the server's TIME, so proxies with skewed clocks agree on the windows.
//
// Key layout (the identity `key` is already hashed by the limiter; raw ids never reach Redis):
//   sliding-log      <prefix>{<key>}:l:<window name>   ZSET, score = epoch ms of a counted hit,
//                                                       PEXPIRE = the window's length
//   sliding-counter  <prefix>{<key>}:c                 HASH, 3 integer fields per window (see the script),
//                                                       PEXPIRE = until the longest window has rolled twice
// The `{<key>}` hash tag puts all of an identity's keys in one Cluster slot, which a multi-key script
// needs. (A `}` inside the key just shortens the tag; the keys still share it.)
//
// sliding-counter error bound: the estimate prev·(W - e)/W + cur assumes the previous fixed window's hits
// were spread evenly. It differs from the exact sliding count by less than the previous window's count
// (≤ limit). So each fixed window admits at most `limit`, and any span of W ms at most 2·limit − 1: that
// worst case needs a whole window's hits bunched at its very end. Under evenly spread traffic it admits
// exactly `limit` per W. Concurrent hits are still counted exactly: the script is atomic.
//
// Errors (connection, timeout, script errors) propagate as rejections; the proxy applies on_error.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';
import type { Clock } from '../core/clock.js';
import { projectPath } from '../core/paths.js';
import type { Algorithm, Decision, RateLimitStore, WindowSpec, WindowState } from './store.js';

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
   * using the server's TIME. Production leaves it unset, so that every proxy shares one clock.
   */
  readonly clock?: Clock;
}

export class RateLimitStoreTimeoutError extends Error {
  readonly code = 'RATE_LIMIT_STORE_TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`rate limit store call exceeded ${timeoutMs} ms`);
    this.name = 'RateLimitStoreTimeoutError';
  }
}

interface Script {
  readonly lua: string;
  readonly sha: string;
}

/** What a window set turns into on the wire, computed once per set (the limiter's array is frozen). */
interface Prepared {
  /** sliding-log key suffixes, one per window. */
  readonly logSuffixes: readonly string[];
  /** ARGV after mode and now: W, limit per window. */
  readonly tail: readonly string[];
}

const COUNTER_SUFFIX = ':c';

function loadScript(name: string): Script {
  // Read from the source tree, which compiled code (dist/) finds by walking up to package.json.
  const lua = readFileSync(projectPath('proxy', 'ratelimit', 'lua', `${name}.lua`), 'utf8');
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

export class RedisRateLimitStore implements RateLimitStore {
  private readonly redis: Redis | Cluster;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly clock: Clock | null;
  private readonly log = loadScript('sliding-log');
  private readonly counter = loadScript('sliding-counter');
  private readonly prepared = new WeakMap<readonly WindowSpec[], Prepared>();
  /** Window names seen, so reset() can find an identity's sliding-log keys without SCAN. */
  private readonly windowNames = new Set<string>();

  constructor({ redis, prefix = '', timeoutMs = 0, clock }: RedisRateLimitStoreOptions) {
    this.redis = redis;
    this.prefix = prefix;
    this.timeoutMs = timeoutMs;
    this.clock = clock ?? null;
  }

  hit(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision> {
    return this.run(key, windows, algorithm, '1');
  }

  peek(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision> {
    return this.run(key, windows, algorithm, '0');
  }

  /**
   * Deletes the identity's counter hash and its sliding-log ZSETs for every window name this store has
   * seen, plus those of `windows` when given (a fresh process that has not served the key yet).
   */
  reset(key: string, windows?: readonly WindowSpec[]): Promise<void> {
    if (windows !== undefined) this.prepare(windows);
    const base = this.prefix + '{' + key + '}';
    const keys = [base + COUNTER_SUFFIX];
    for (const name of this.windowNames) keys.push(base + ':l:' + name);
    return this.bound(this.redis.unlink(...keys)).then(() => undefined);
  }

  /** The client belongs to the caller, who closes it. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The Redis keys that hold `key`'s counters for this window set and algorithm (tests, tooling). */
  keysFor(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): string[] {
    const base = this.prefix + '{' + key + '}';
    if (algorithm !== 'sliding-log') return [base + COUNTER_SUFFIX];
    return this.prepare(windows).logSuffixes.map((s) => base + s);
  }

  private run(
    key: string,
    windows: readonly WindowSpec[],
    algorithm: Algorithm,
    mode: string,
  ): Promise<Decision> {
    const p = this.prepare(windows);
    const base = this.prefix + '{' + key + '}';
    const now = this.clock === null ? '' : String(this.clock.now());
    let script: Script;
    let args: (string | number)[];
    if (algorithm === 'sliding-log') {
      script = this.log;
      const n = windows.length;
      args = [script.sha, n];
      for (let j = 0; j < n; j++) args.push(base + p.logSuffixes[j]);
    } else {
      script = this.counter;
      args = [script.sha, 1, base + COUNTER_SUFFIX];
    }
    args.push(mode, now);
    for (const a of p.tail) args.push(a);
    const decide = (reply: unknown): Decision => toDecision(reply as number[], windows);
    // One `then` with both handlers: the hot path costs one promise beyond the client's own.
    const decision = this.redis.call('evalsha', args).then(decide, (err: unknown) => {
      // NOSCRIPT: a restarted or flushed server. EVAL once, which also caches the script again.
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      args[0] = script.lua;
      return this.redis.call('eval', args).then(decide);
    });
    return this.bound(decision);
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
      for (const w of windows) {
        tail.push(String(w.windowMs), String(w.limit));
        this.windowNames.add(w.name);
      }
      p = { logSuffixes: windows.map((w) => ':l:' + w.name), tail };
      this.prepared.set(windows, p);
    }
    return p;
  }
}

function toDecision(reply: number[], windows: readonly WindowSpec[]): Decision {
  const states = new Array<WindowState>(windows.length);
  for (let j = 0; j < windows.length; j++) {
    const w = windows[j]!;
    const o = 2 + j * 3;
    states[j] = {
      name: w.name,
      limit: w.limit,
      windowMs: w.windowMs,
      remaining: reply[o]!,
      resetAt: reply[o + 1]!,
      retryAfterMs: reply[o + 2]!,
    };
  }
  return { allowed: reply[0] === 1, windows: states, now: reply[1]! };
}
