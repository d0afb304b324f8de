// The one seam between the limiter and where its counters live.
// Implementations: MemoryRateLimitStore (one process) and RedisRateLimitStore (many).

export type Algorithm = 'sliding-log' | 'sliding-counter';

export interface WindowSpec {
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
}

export interface WindowState {
  readonly name: string;
  readonly limit: number;
  /** The window's length, so a Decision alone can rank its windows (headers: ties go to the shorter). */
  readonly windowMs: number;
  /** Units (a request of cost N uses N) still admitted in this window after this decision. */
  readonly remaining: number;
  /** Epoch ms at which the window is fully replenished (the oldest counted hit has left it). */
  readonly resetAt: number;
  /**
   * Ms until one more request of the decision's cost (1 for a peek) fits in this window; 0 when it
   * already does. A cost above the window's limit never fits: then it is the window's length.
   */
  readonly retryAfterMs: number;
}

export interface Decision {
  /** True when every window admitted the request (and it was counted in all of them). */
  readonly allowed: boolean;
  /** One entry per window, in the order the windows were given. */
  readonly windows: readonly WindowState[];
  /**
   * Epoch ms of the time source that decided (Redis server time for the Redis store), so relative
   * values such as the `t` of the RateLimit header come out right even on a proxy with a skewed clock.
   * Optional so hand-made decisions (fakes, fallbacks) stay valid; the stores always set it.
   */
  readonly now?: number;
}

export interface RateLimitStore {
  /**
   * Atomically checks `key` against every window for a request of `cost` units (a positive integer:
   * see checkCost). Only when every window has `cost` left is it counted, `cost` times, in all of them;
   * a rejected request consumes nothing.
   */
  hit(key: string, windows: readonly WindowSpec[], algorithm: Algorithm, cost: number): Promise<Decision>;
  /**
   * Whether `hit` would admit a request now, without counting anything. The window states describe the
   * current counts (remaining, resetAt, retryAfterMs as they stand, with no request added).
   */
  peek(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision>;
  /** Forgets every counter of `key`. */
  reset(key: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Throws unless `cost` is a positive safe integer. Every store checks it before touching a counter: a
 * cost of 0 would admit without counting, and a negative one would hand quota back.
 */
export function checkCost(cost: number): void {
  if (!Number.isSafeInteger(cost) || cost < 1)
    throw new RangeError(`a request's cost must be a positive integer, got ${String(cost)}`);
}
