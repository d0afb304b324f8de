// The rate limiter: one identity's requests against a set of windows, kept in a store.
// The proxy builds one per route at configuration time and calls check() on the hot path.
import { createHmac, hash } from 'node:crypto';
import type { Algorithm, Decision, RateLimitStore, WindowSpec } from './store.js';

export interface RateLimiterOptions {
  readonly store: RateLimitStore;
  readonly windows: readonly WindowSpec[];
  readonly algorithm?: Algorithm;
  /** Namespaces the keys (the proxy uses the route name), so limiters sharing a store count apart. */
  readonly scope?: string;
  /**
   * Optional: key identities with HMAC-SHA256(secret, id) instead of SHA-256(id), so that hashes of
   * guessable identities (IPv4 addresses: 2^32 of them) cannot be reversed by enumeration. Every proxy
   * sharing a store must use the same secret, or they count apart.
   */
  readonly secret?: string;
}

/** One window as /admin/limits shows it: times in epoch seconds and seconds. */
export interface LimitInfoWindow {
  readonly name: string;
  readonly limit: number;
  readonly remaining: number;
  readonly reset_at: number;
  readonly retry_after: number;
}

export interface LimitInfo {
  readonly windows: LimitInfoWindow[];
}

const ALGORITHMS: readonly Algorithm[] = ['sliding-log', 'sliding-counter'];
/** Identities whose hashed key is remembered; hashing (~0.6 µs) would otherwise dominate the memory store. */
const KEY_CACHE_SIZE = 10_000;

export class RateLimiter {
  readonly windows: readonly WindowSpec[];
  readonly algorithm: Algorithm;
  readonly scope: string;
  private readonly store: RateLimitStore;
  private readonly secret: string | null;
  private readonly keys = new Map<string, string>();

  constructor({ store, windows, algorithm = 'sliding-log', scope = '', secret }: RateLimiterOptions) {
    if (!ALGORITHMS.includes(algorithm))
      throw new TypeError(`unknown rate limit algorithm: ${String(algorithm)}`);
    this.store = store;
    // Frozen and kept by identity: stores cache per window set what they derive from it.
    this.windows = validateWindows(windows);
    this.algorithm = algorithm;
    this.scope = scope;
    this.secret = secret ?? null;
  }

  /**
   * Counts the request, `cost` units of it (a positive integer), when every window has that many left;
   * the hot path.
   */
  check(id: string, cost = 1): Promise<Decision> {
    return this.store.hit(this.keyFor(id), this.windows, this.algorithm, cost);
  }

  async isAllowed(id: string): Promise<boolean> {
    return (await this.check(id)).allowed;
  }

  /** Whole seconds (rounded up) until one more request from `id` would be admitted; 0 if it is now. */
  async getRetryAfter(id: string): Promise<number> {
    const decision = await this.store.peek(this.keyFor(id), this.windows, this.algorithm);
    let ms = 0;
    for (const w of decision.windows) if (w.retryAfterMs > ms) ms = w.retryAfterMs;
    return Math.ceil(ms / 1000);
  }

  /** Every window's state for `id`, without counting a request. */
  async getLimitInfo(id: string): Promise<LimitInfo> {
    const decision = await this.store.peek(this.keyFor(id), this.windows, this.algorithm);
    return {
      windows: decision.windows.map((w) => ({
        name: w.name,
        limit: w.limit,
        remaining: w.remaining,
        reset_at: Math.ceil(w.resetAt / 1000),
        retry_after: Math.ceil(w.retryAfterMs / 1000),
      })),
    };
  }

  reset(id: string): Promise<void> {
    return this.store.reset(this.keyFor(id));
  }

  /**
   * The store key for `id`: scope, ':', then 16 base64url characters (96 bits) of SHA-256 — or of
   * HMAC-SHA256 with `secret`. A cryptographic hash, because the identity is client-chosen (a header):
   * with a fast non-cryptographic hash a client could forge collisions and spend someone else's quota.
   */
  keyFor(id: string): string {
    let key = this.keys.get(id);
    if (key === undefined) {
      const digest =
        this.secret === null
          ? hash('sha256', id, 'base64url')
          : createHmac('sha256', this.secret).update(id).digest('base64url');
      key = this.scope === '' ? digest.slice(0, 16) : this.scope + ':' + digest.slice(0, 16);
      if (this.keys.size >= KEY_CACHE_SIZE) this.keys.delete(this.keys.keys().next().value!);
      this.keys.set(id, key);
    }
    return key;
  }
}

/** Checks a window set (positive integer limits and lengths, unique non-empty names); returns it frozen. */
export function validateWindows(windows: readonly WindowSpec[]): readonly WindowSpec[] {
  if (!Array.isArray(windows) || windows.length === 0)
    throw new RangeError('a rate limiter needs at least one window');
  const names = new Set<string>();
  const frozen = windows.map((w) => {
    // Printable ASCII: the name is quoted into RateLimit headers (RFC 8941 strings) and Redis keys.
    if (typeof w.name !== 'string' || !/^[\x20-\x7e]+$/.test(w.name)) {
      throw new TypeError(`window name must be non-empty printable ASCII, got ${JSON.stringify(w.name)}`);
    }
    if (names.has(w.name)) throw new RangeError(`duplicate window name: ${w.name}`);
    names.add(w.name);
    if (!Number.isSafeInteger(w.limit) || w.limit < 1) {
      throw new RangeError(`window ${w.name}: limit must be a positive integer, got ${String(w.limit)}`);
    }
    if (!Number.isSafeInteger(w.windowMs) || w.windowMs < 1) {
      throw new RangeError(
        `window ${w.name}: windowMs must be a positive integer, got ${String(w.windowMs)}`,
      );
    }
    return Object.freeze({ name: w.name, limit: w.limit, windowMs: w.windowMs });
  });
  return Object.freeze(frozen);
}
