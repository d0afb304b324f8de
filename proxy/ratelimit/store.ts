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
  /** Requests still admitted in this window after this decision. */
  readonly remaining: number;
  /** Epoch ms at which the window is fully replenished (the oldest counted hit has left it). */
  readonly resetAt: number;
  /** Ms until one more request fits in this window; 0 when it already does. */
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
   * Atomically checks `key` against every window. Only when all admit the request is it
   * counted, in all of them; a rejected request consumes nothing.
   */
  hit(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision>;
  /**
   * Whether `hit` would admit a request now, without counting anything. The window states describe the
   * current counts (remaining, resetAt, retryAfterMs as they stand, with no request added).
   */
  peek(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision>;
  /** Forgets every counter of `key`. */
  reset(key: string): Promise<void>;
  close(): Promise<void>;
}
