// The error a breaker throws instead of running a call. Callers match it by its brand or
// its stable code, never by message or instanceof (two copies of this module may be loaded).
import { FloodgateError, hasBrand } from '../errors.js';

export const CIRCUIT_OPEN = 'circuit_open';

export class CircuitBreakerOpenError extends FloodgateError<typeof CIRCUIT_OPEN> {
  /** Whole seconds for a Retry-After header: never below 1. */
  readonly retryAfter: number;

  constructor(
    /** The breaker's name: the upstream or service it guards. */
    readonly breakerName: string,
    /** OPEN while the timeout runs; HALF_OPEN when every probe slot is taken. */
    readonly state: 'OPEN' | 'HALF_OPEN',
    /** Ms until a call may be admitted again. */
    readonly retryAfterMs: number,
  ) {
    super(
      'CircuitBreakerOpenError',
      CIRCUIT_OPEN,
      state === 'OPEN'
        ? `circuit "${breakerName}" is open; retry in ${retryAfterMs} ms`
        : `circuit "${breakerName}" is half-open and every probe slot is taken`,
    );
    this.retryAfter = Math.max(1, Math.ceil(retryAfterMs / 1000));
  }
}

export function isCircuitBreakerOpenError(error: unknown): error is CircuitBreakerOpenError {
  return hasBrand(error, 'CircuitBreakerOpenError');
}
