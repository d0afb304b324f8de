// What the proxy does when its shared store fails (the policy's store.on_error). A breaker sits in
// front of the primary store, so during an outage each request costs one branch, not one
// timeout; once the breaker half-opens, a single probe finds out whether the store is back.
import type { CircuitBreaker } from '../../core/breaker/circuit-breaker.js';
import { FloodgateError, hasBrand } from '../../core/errors.js';
import { type Algorithm, checkCost, type Decision, type RateLimitStore, type WindowSpec } from './store.js';

export class StoreUnavailableError extends FloodgateError<'store_unavailable'> {
  constructor(cause?: unknown) {
    super('StoreUnavailableError', 'store_unavailable', 'rate limit store unavailable', { cause });
  }
}

export function isStoreUnavailable(err: unknown): err is StoreUnavailableError {
  return hasBrand(err, 'StoreUnavailableError');
}

export interface GuardedStoreOptions {
  readonly primary: RateLimitStore;
  readonly breaker: CircuitBreaker;
  /** Decides while the primary is down (on_error: local); null means callers get StoreUnavailableError. */
  readonly fallback: RateLimitStore | null;
  /** Told of every primary call: its duration in seconds, and the error when it failed. */
  readonly observe?: (seconds: number, err: unknown) => void;
}

export class GuardedStore implements RateLimitStore {
  constructor(private readonly o: GuardedStoreOptions) {}

  get healthy(): boolean {
    return this.o.breaker.state === 'CLOSED';
  }

  hit(key: string, windows: readonly WindowSpec[], algorithm: Algorithm, cost = 1): Promise<Decision> {
    // Checked here, not left to the primary: a caller's mistake is no store failure for the breaker.
    try {
      checkCost(cost);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.call(key, windows, algorithm, cost, false);
  }

  peek(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision> {
    return this.call(key, windows, algorithm, 1, true);
  }

  async reset(key: string): Promise<void> {
    await Promise.all([this.o.primary.reset(key), this.o.fallback?.reset(key)]);
  }

  async close(): Promise<void> {
    await Promise.all([this.o.primary.close(), this.o.fallback?.close()]);
  }

  private async call(
    key: string,
    windows: readonly WindowSpec[],
    algorithm: Algorithm,
    cost: number,
    peek: boolean,
  ): Promise<Decision> {
    const { primary, breaker, observe } = this.o;
    if (!breaker.canExecute()) return this.degraded(key, windows, algorithm, cost, peek, undefined);
    const started = performance.now();
    try {
      const decision = peek
        ? await primary.peek(key, windows, algorithm)
        : await primary.hit(key, windows, algorithm, cost);
      breaker.recordSuccess();
      observe?.((performance.now() - started) / 1000, undefined);
      return decision;
    } catch (err) {
      breaker.recordFailure();
      observe?.((performance.now() - started) / 1000, err);
      return this.degraded(key, windows, algorithm, cost, peek, err);
    }
  }

  private degraded(
    key: string,
    windows: readonly WindowSpec[],
    algorithm: Algorithm,
    cost: number,
    peek: boolean,
    cause: unknown,
  ): Promise<Decision> {
    const { fallback } = this.o;
    if (!fallback) return Promise.reject(new StoreUnavailableError(cause));
    return peek ? fallback.peek(key, windows, algorithm) : fallback.hit(key, windows, algorithm, cost);
  }
}
