// A breaker's settings, validated and frozen once at configuration time, so the hot path
// never re-checks them and the registry can tell a changed breaker from an unchanged one.

export interface FailureRateSettings {
  /** Failure ratio in (0, 1] at or above which the circuit opens. */
  readonly threshold: number;
  /** Length of the rolling window. */
  readonly windowMs: number;
  /** Calls the window must hold before the ratio is trusted; below it the rate never trips. */
  readonly minimumCalls: number;
  /** Buckets the window is cut into (default 10): the window slides by windowMs / buckets. */
  readonly buckets?: number | undefined;
}

export interface BreakerSettings {
  /** Consecutive failures in CLOSED that open the circuit (default 5). */
  readonly failureThreshold?: number | undefined;
  /** Successful probes in HALF_OPEN that close it (default 2). */
  readonly successThreshold?: number | undefined;
  /** Time spent OPEN before probes are let through (default 60 s). */
  readonly timeoutMs?: number | undefined;
  /** Probes admitted at once in HALF_OPEN (default 3). */
  readonly halfOpenMaxCalls?: number | undefined;
  /** Optional extra trigger: failure rate over a rolling window. */
  readonly failureRate?: FailureRateSettings | undefined;
  /** Optional: a success slower than this counts as a failure. */
  readonly slowCallMs?: number | undefined;
  /**
   * Used by execute/wrap: an error for which this returns false says nothing about the
   * dependency's health (bad input, caller abort), so the call is released, not counted.
   */
  readonly isFailure?: ((error: unknown) => boolean) | undefined;
}

export interface ResolvedBreakerSettings {
  readonly failureThreshold: number;
  readonly successThreshold: number;
  readonly timeoutMs: number;
  readonly halfOpenMaxCalls: number;
  readonly failureRate: Readonly<Required<FailureRateSettings>> | null;
  readonly slowCallMs: number | null;
  readonly isFailure: ((error: unknown) => boolean) | null;
}

/** The defaults: 5 failures open, 2 successes close, 60s open, 3 half-open probes. */
export const DEFAULT_BREAKER_SETTINGS = Object.freeze({
  failureThreshold: 5,
  successThreshold: 2,
  timeoutMs: 60_000,
  halfOpenMaxCalls: 3,
  failureRateBuckets: 10,
});

/** Fills defaults, validates (RangeError naming the breaker and the field) and freezes. */
export function resolveBreakerSettings(name: string, input: BreakerSettings): ResolvedBreakerSettings {
  const d = DEFAULT_BREAKER_SETTINGS;
  const v = validator(`circuit breaker "${name}"`);
  const rate = input.failureRate;
  const resolved: ResolvedBreakerSettings = {
    failureThreshold: v.integer('failureThreshold', input.failureThreshold ?? d.failureThreshold, 1),
    successThreshold: v.integer('successThreshold', input.successThreshold ?? d.successThreshold, 1),
    timeoutMs: v.atLeast('timeoutMs', input.timeoutMs ?? d.timeoutMs, 0),
    halfOpenMaxCalls: v.integer('halfOpenMaxCalls', input.halfOpenMaxCalls ?? d.halfOpenMaxCalls, 1),
    failureRate:
      rate == null
        ? null
        : Object.freeze({
            threshold: v.ratio('failureRate.threshold', rate.threshold),
            windowMs: v.positive('failureRate.windowMs', rate.windowMs),
            minimumCalls: v.integer('failureRate.minimumCalls', rate.minimumCalls, 1),
            buckets: v.integer('failureRate.buckets', rate.buckets ?? d.failureRateBuckets, 1),
          }),
    slowCallMs: input.slowCallMs == null ? null : v.positive('slowCallMs', input.slowCallMs),
    isFailure: input.isFailure ?? null,
  };
  return Object.freeze(resolved);
}

/** True when two breakers would behave identically; isFailure compares by identity. */
export function sameBreakerSettings(a: ResolvedBreakerSettings, b: ResolvedBreakerSettings): boolean {
  const ra = a.failureRate;
  const rb = b.failureRate;
  const sameRate =
    ra === rb ||
    (ra !== null &&
      rb !== null &&
      ra.threshold === rb.threshold &&
      ra.windowMs === rb.windowMs &&
      ra.minimumCalls === rb.minimumCalls &&
      ra.buckets === rb.buckets);
  return (
    sameRate &&
    a.failureThreshold === b.failureThreshold &&
    a.successThreshold === b.successThreshold &&
    a.timeoutMs === b.timeoutMs &&
    a.halfOpenMaxCalls === b.halfOpenMaxCalls &&
    a.slowCallMs === b.slowCallMs &&
    a.isFailure === b.isFailure
  );
}

function validator(where: string) {
  const fail = (field: string, rule: string, value: unknown): never => {
    throw new RangeError(`${where}: ${field} must be ${rule}, got ${String(value)}`);
  };
  const finite = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
  return {
    atLeast: (field: string, value: number, min: number): number =>
      finite(value) && value >= min ? value : fail(field, `a finite number >= ${min}`, value),
    integer: (field: string, value: number, min: number): number =>
      Number.isInteger(value) && value >= min ? value : fail(field, `an integer >= ${min}`, value),
    positive: (field: string, value: number): number =>
      finite(value) && value > 0 ? value : fail(field, 'a finite number > 0', value),
    ratio: (field: string, value: number): number =>
      finite(value) && value > 0 && value <= 1 ? value : fail(field, 'in (0, 1]', value),
  };
}
