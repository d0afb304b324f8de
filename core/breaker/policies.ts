// When to trip, kept apart from the state machine (circuit-breaker.ts) so a rule can be
// added or tested without touching the CLOSED/OPEN/HALF_OPEN logic. Policies see only
// outcomes counted while CLOSED; the state machine resets them on every transition.

import type { ResolvedBreakerSettings } from './settings.js';

export interface TripPolicy {
  onSuccess(now: number): void;
  onFailure(now: number): void;
  /** Asked after each failure: should the circuit open now? */
  shouldTrip(now: number): boolean;
  /** Forget everything, as after a transition. */
  reset(): void;
}

/** Trips after `threshold` failures in a row; any success starts the count over. */
export class ConsecutiveFailuresPolicy implements TripPolicy {
  private failures = 0;

  constructor(private readonly threshold: number) {}

  onSuccess(): void {
    this.failures = 0;
  }

  onFailure(): void {
    this.failures++;
  }

  shouldTrip(): boolean {
    return this.failures >= this.threshold;
  }

  reset(): void {
    this.failures = 0;
  }
}

export interface FailureRateOptions {
  readonly threshold: number;
  readonly windowMs: number;
  readonly minimumCalls: number;
  readonly buckets: number;
}

/**
 * Trips when failures / calls >= threshold over a rolling window holding at least
 * `minimumCalls` calls, so a handful of early errors cannot open a quiet circuit.
 *
 * The window is a ring of fixed buckets (windowMs / buckets each), rolled lazily from the
 * timestamps the calls pass in: no timers, and memory is fixed whatever the traffic.
 * The window therefore covers the current partial bucket plus buckets - 1 full ones: an
 * outcome is forgotten between windowMs - windowMs/buckets and windowMs after it happened.
 */
export class FailureRatePolicy implements TripPolicy {
  private readonly successes: Uint32Array;
  private readonly failures: Uint32Array;
  private readonly bucketMs: number;
  private head = 0;
  /** Absolute bucket number (now / bucketMs) that `head` holds. */
  private headBucket = Number.NEGATIVE_INFINITY;
  private successTotal = 0;
  private failureTotal = 0;

  constructor(private readonly options: FailureRateOptions) {
    this.successes = new Uint32Array(options.buckets);
    this.failures = new Uint32Array(options.buckets);
    this.bucketMs = options.windowMs / options.buckets;
  }

  onSuccess(now: number): void {
    this.roll(now);
    this.successes[this.head]!++;
    this.successTotal++;
  }

  onFailure(now: number): void {
    this.roll(now);
    this.failures[this.head]!++;
    this.failureTotal++;
  }

  shouldTrip(now: number): boolean {
    this.roll(now);
    const calls = this.successTotal + this.failureTotal;
    return calls >= this.options.minimumCalls && this.failureTotal / calls >= this.options.threshold;
  }

  /** Calls and failures currently in the window. */
  counts(now: number): { calls: number; failures: number } {
    this.roll(now);
    return { calls: this.successTotal + this.failureTotal, failures: this.failureTotal };
  }

  reset(): void {
    this.successes.fill(0);
    this.failures.fill(0);
    this.successTotal = 0;
    this.failureTotal = 0;
    this.headBucket = Number.NEGATIVE_INFINITY;
  }

  private roll(now: number): void {
    const bucket = Math.floor(now / this.bucketMs);
    let gap = bucket - this.headBucket;
    // A clock that stepped back keeps counting into the current bucket rather than
    // rewriting history.
    if (gap <= 0) return;
    const n = this.successes.length;
    if (gap >= n) {
      this.reset();
    } else {
      while (gap-- > 0) {
        this.head = (this.head + 1) % n;
        this.successTotal -= this.successes[this.head]!;
        this.failureTotal -= this.failures[this.head]!;
        this.successes[this.head] = 0;
        this.failures[this.head] = 0;
      }
    }
    this.headBucket = bucket;
  }
}

/** Trips when any member would; every member sees every outcome. */
export class AnyOfPolicy implements TripPolicy {
  constructor(private readonly members: readonly TripPolicy[]) {}

  onSuccess(now: number): void {
    for (const m of this.members) m.onSuccess(now);
  }

  onFailure(now: number): void {
    for (const m of this.members) m.onFailure(now);
  }

  shouldTrip(now: number): boolean {
    for (const m of this.members) if (m.shouldTrip(now)) return true;
    return false;
  }

  reset(): void {
    for (const m of this.members) m.reset();
  }
}

/** The policy a breaker's settings call for; the composite only when a second rule is on. */
export function tripPolicyFor(settings: ResolvedBreakerSettings): TripPolicy {
  const consecutive = new ConsecutiveFailuresPolicy(settings.failureThreshold);
  if (settings.failureRate === null) return consecutive;
  return new AnyOfPolicy([consecutive, new FailureRatePolicy(settings.failureRate)]);
}
