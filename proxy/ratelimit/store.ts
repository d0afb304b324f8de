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
}

export interface RateLimitStore {
  /**
   * Atomically checks `key` against every window. Only when all admit the request is it
   * counted, in all of them; a rejected request consumes nothing.
   */
  hit(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision>;
  /** The same answer as `hit` would give, without counting anything. */
  peek(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision>;
  /** Forgets every counter of `key`. */
  reset(key: string): Promise<void>;
  close(): Promise<void>;
}
