// The circuit breaker's state machine: CLOSED → OPEN → HALF_OPEN → CLOSED.
// No I/O and no timers: OPEN turns HALF_OPEN lazily, the first time anyone looks after the
// injected clock passes the deadline. When to trip is a TripPolicy's decision (policies.ts).

import { EventEmitter } from 'node:events';
import { type Clock, systemClock } from '../clock.js';
import { CircuitBreakerOpenError } from './circuit-breaker-open-error.js';
import { type TripPolicy, tripPolicyFor } from './policies.js';
import { type BreakerSettings, type ResolvedBreakerSettings, resolveBreakerSettings } from './settings.js';

export type StateName = 'CLOSED' | 'OPEN' | 'HALF_OPEN';

type CircuitState =
  | { readonly kind: 'CLOSED' }
  | { readonly kind: 'OPEN'; readonly openedAt: number; readonly halfOpenAt: number }
  | { readonly kind: 'HALF_OPEN'; inFlight: number; successes: number };

export type TransitionReason =
  /** The trip policy fired while CLOSED. */
  | 'tripped'
  /** A probe failed in HALF_OPEN. */
  | 'probe-failed'
  /** The OPEN timeout elapsed. */
  | 'timeout-elapsed'
  /** successThreshold probes succeeded. */
  | 'probes-succeeded'
  /** reset() was called (the admin endpoint). */
  | 'reset';

export interface StateChange {
  readonly name: string;
  readonly from: StateName;
  readonly to: StateName;
  readonly reason: TransitionReason;
  /** Epoch ms, from the breaker's clock. */
  readonly at: number;
}

export interface FailureEvent {
  readonly name: string;
  readonly at: number;
  /** The call succeeded but took longer than slowCallMs. */
  readonly slow: boolean;
}

/** Each transition emits its own event, then `stateChange`, with the same payload. */
export type BreakerEvents = {
  open: [change: StateChange];
  halfOpen: [change: StateChange];
  close: [change: StateChange];
  stateChange: [change: StateChange];
  /** Every counted failure, whatever the state: feeds circuit_breaker_failures_total. */
  failure: [event: FailureEvent];
};

/** One breaker as GET /admin/breakers shows it. */
export interface BreakerMetrics {
  state: StateName;
  failure_count: number;
  success_count: number;
  total_calls: number;
  error_rate: number;
  last_failure_time: string | null;
}

export interface BreakerOptions extends BreakerSettings {
  /** What the breaker guards (an upstream or service name); used in errors and events. */
  readonly name?: string | undefined;
  readonly clock?: Clock | undefined;
}

const CLOSED: CircuitState = Object.freeze({ kind: 'CLOSED' });
const EVENT_FOR = { CLOSED: 'close', OPEN: 'open', HALF_OPEN: 'halfOpen' } as const;
/** Epoch of a call reported through the manual API, which carries no admission ticket. */
const UNKNOWN = -1;
/**
 * Epochs are drawn from one counter for every breaker of the process, so a ticket is never valid for
 * any breaker but the one that issued it, nor for a later state of it: an outcome that arrives late
 * (from another process, or after a reload replaced the breaker) can always be told for stale.
 */
let lastEpoch = 0;

/** How an admitted call ended; `release`: it says nothing about the dependency (the client left). */
export type CallOutcome = 'success' | 'failure' | 'release';

/**
 * What a caller needs of a breaker to guard calls with tickets: the proxy's data plane uses it, and a
 * cluster worker implements it over its primary's breakers.
 */
export interface Breaker {
  readonly name: string;
  readonly state: StateName;
  /** Ms left OPEN; 0 in any other state. */
  retryAfterMs(): number;
  /**
   * Admits a call: a ticket to end it with, or null when refused. May answer later (a cluster worker
   * asks its primary while the circuit is not CLOSED).
   */
  admit(): number | null | Promise<number | null>;
  /** Ends an admitted call; exactly once per ticket admit() gave. */
  end(ticket: number, outcome: CallOutcome, durationMs?: number): void;
}
/** Retry-After for a rejection in HALF_OPEN: probes are short-lived, so come back soon. */
const HALF_OPEN_RETRY_MS = 1000;

/**
 * A circuit breaker.
 *
 * Contract of the manual API: `canExecute()` ADMITS a call (in HALF_OPEN it takes one of
 * `halfOpenMaxCalls` probe slots). Every admitted call must then be ended by exactly one of
 * `recordSuccess(durationMs?)`, `recordFailure()` or `release()` (the call says nothing about
 * the dependency, e.g. the client aborted; it frees the slot and counts nowhere). A call that
 * is never ended holds its HALF_OPEN slot until the circuit changes state.
 * `execute` and `wrap` keep that contract for you.
 *
 * Outcomes of calls admitted under an earlier state (a slow call that outlives an open/close
 * cycle) still count in the metrics but do not move the state machine. execute/wrap know each
 * call's admission exactly; the manual API cannot, so there a result in HALF_OPEN is taken as
 * a probe's while probes are in flight, and ignored in OPEN.
 *
 * Metrics: success_count, failure_count and total_calls are lifetime totals since creation or
 * the last reset(); error_rate is failure_count / total_calls (0 before any call). Lifetime, not
 * the rolling window, because that window is optional and the totals must add up; a slow success
 * counts as a failure everywhere. Released and rejected calls count in none of them.
 */
export class CircuitBreaker extends EventEmitter<BreakerEvents> implements Breaker {
  readonly name: string;
  readonly settings: ResolvedBreakerSettings;
  private readonly clock: Clock;
  private readonly policy: TripPolicy;
  /** Infinity when the slow-call trigger is off, so the check needs no branch. */
  private readonly slowCallMs: number;
  private current: CircuitState = CLOSED;
  /** Renewed on every transition (and reset), so a stale outcome can be told from a live one. */
  private epoch = ++lastEpoch;
  private successCount = 0;
  private failureCount = 0;
  private lastFailureAt: number | null = null;

  constructor(options: BreakerOptions = {}) {
    super();
    this.name = options.name ?? 'breaker';
    this.clock = options.clock ?? systemClock;
    this.settings = resolveBreakerSettings(this.name, options);
    this.policy = tripPolicyFor(this.settings);
    this.slowCallMs = this.settings.slowCallMs ?? Number.POSITIVE_INFINITY;
  }

  /** The current state; turns OPEN into HALF_OPEN (emitting halfOpen) once the timeout has passed. */
  get state(): StateName {
    const s = this.current;
    if (s.kind === 'OPEN') {
      const now = this.clock.now();
      if (now >= s.halfOpenAt) this.halfOpen(now);
    }
    return this.current.kind;
  }

  /** The epoch now in force: what admit() would hand out as a ticket. */
  get generation(): number {
    return this.epoch;
  }

  /** Ms left OPEN; 0 in any other state (or once the timeout has passed). */
  retryAfterMs(): number {
    const s = this.current;
    return s.kind === 'OPEN' ? Math.max(0, s.halfOpenAt - this.clock.now()) : 0;
  }

  /** Admits a call, or says no. See the class comment for what an admitted call owes. */
  canExecute(): boolean {
    // The hot path: a closed circuit admits with one comparison and no allocation.
    if (this.current.kind === 'CLOSED') return true;
    return this.admitSlowPath();
  }

  recordSuccess(durationMs?: number): void {
    this.end(UNKNOWN, 'success', durationMs);
  }

  recordFailure(): void {
    this.end(UNKNOWN, 'failure');
  }

  release(): void {
    this.end(UNKNOWN, 'release');
  }

  /** canExecute() with a ticket: the epoch the call was admitted under, or null when refused. */
  admit(): number | null {
    return this.canExecute() ? this.epoch : null;
  }

  /**
   * Ends a call admitted with `ticket`. An outcome from an earlier state (or an earlier breaker: tickets
   * are unique in the process) counts in the metrics but does not move the state machine.
   */
  end(ticket: number, outcome: CallOutcome, durationMs?: number): void {
    if (outcome === 'release') this.free(ticket);
    else if (outcome === 'failure') this.fail(ticket, false);
    else if (durationMs !== undefined && durationMs > this.slowCallMs) this.fail(ticket, true);
    else this.succeed(ticket);
  }

  /**
   * Runs `fn` if the circuit admits it, else throws CircuitBreakerOpenError. A thrown error
   * counts as a failure (unless settings.isFailure says otherwise) and is rethrown.
   */
  async execute<T>(fn: () => T): Promise<Awaited<T>> {
    const ticket = this.admit();
    if (ticket === null) throw this.rejectionError();
    // Read the clock only when the slow-call trigger is on: decided at configuration time.
    const timed = this.slowCallMs !== Number.POSITIVE_INFINITY;
    const startedAt = timed ? this.clock.now() : 0;
    let result: Awaited<T>;
    try {
      result = await fn();
    } catch (error) {
      this.end(ticket, this.counts(error) ? 'failure' : 'release');
      throw error;
    }
    this.end(ticket, 'success', timed ? this.clock.now() - startedAt : undefined);
    return result;
  }

  /** A decorator: `fn` guarded by this breaker, with the same arguments and `this`. */
  wrap<A extends unknown[], R, This = unknown>(
    fn: (this: This, ...args: A) => R,
  ): (this: This, ...args: A) => Promise<Awaited<R>> {
    const breaker = this;
    return function guarded(this: This, ...args: A) {
      return breaker.execute(() => fn.apply(this, args));
    };
  }

  /** The error for a call canExecute() just refused: OPEN with its time left, or HALF_OPEN. */
  rejectionError(): CircuitBreakerOpenError {
    const s = this.current;
    return s.kind === 'OPEN'
      ? new CircuitBreakerOpenError(this.name, 'OPEN', Math.max(0, s.halfOpenAt - this.clock.now()))
      : new CircuitBreakerOpenError(this.name, 'HALF_OPEN', HALF_OPEN_RETRY_MS);
  }

  getMetrics(): BreakerMetrics {
    const total = this.successCount + this.failureCount;
    return {
      state: this.state,
      failure_count: this.failureCount,
      success_count: this.successCount,
      total_calls: total,
      error_rate: total === 0 ? 0 : this.failureCount / total,
      last_failure_time: this.lastFailureAt === null ? null : isoSeconds(this.lastFailureAt),
    };
  }

  /** Forces CLOSED and zeroes every counter; emits close (and stateChange) if it was not closed. */
  reset(): void {
    this.successCount = 0;
    this.failureCount = 0;
    this.lastFailureAt = null;
    this.policy.reset();
    if (this.current.kind !== 'CLOSED') this.moveTo(CLOSED, 'reset', this.clock.now());
    // Even when already closed: calls in flight from before the reset must not feed the fresh policy.
    else this.epoch = ++lastEpoch;
  }

  private admitSlowPath(): boolean {
    let s = this.current;
    if (s.kind === 'OPEN') {
      const now = this.clock.now();
      if (now < s.halfOpenAt) return false;
      this.halfOpen(now);
      s = this.current;
    }
    if (s.kind !== 'HALF_OPEN') return true;
    if (s.inFlight >= this.settings.halfOpenMaxCalls) return false;
    s.inFlight++;
    return true;
  }

  private succeed(epoch: number): void {
    this.successCount++;
    const s = this.current;
    if (s.kind === 'CLOSED') {
      if (this.isLive(epoch)) this.policy.onSuccess(this.clock.now());
    } else if (s.kind === 'HALF_OPEN' && this.ownsProbe(s, epoch)) {
      s.inFlight--;
      s.successes++;
      if (s.successes >= this.settings.successThreshold) {
        this.moveTo(CLOSED, 'probes-succeeded', this.clock.now());
      }
    }
  }

  private fail(epoch: number, slow: boolean): void {
    const now = this.clock.now();
    this.failureCount++;
    this.lastFailureAt = now;
    if (this.listenerCount('failure') > 0) this.emit('failure', { name: this.name, at: now, slow });
    const s = this.current;
    if (s.kind === 'CLOSED') {
      if (!this.isLive(epoch)) return;
      this.policy.onFailure(now);
      if (this.policy.shouldTrip(now)) this.open(now, 'tripped');
    } else if (s.kind === 'HALF_OPEN' && this.ownsProbe(s, epoch)) {
      this.open(now, 'probe-failed');
    }
  }

  private free(epoch: number): void {
    const s = this.current;
    if (s.kind === 'HALF_OPEN' && this.ownsProbe(s, epoch)) s.inFlight--;
  }

  private counts(error: unknown): boolean {
    const isFailure = this.settings.isFailure;
    if (isFailure === null) return true;
    try {
      return isFailure(error);
    } catch {
      // A broken classifier must not leak a probe slot; count the call, as with no classifier.
      return true;
    }
  }

  private isLive(epoch: number): boolean {
    return epoch === UNKNOWN || epoch === this.epoch;
  }

  private ownsProbe(s: { inFlight: number }, epoch: number): boolean {
    return epoch === UNKNOWN ? s.inFlight > 0 : epoch === this.epoch;
  }

  private open(now: number, reason: TransitionReason): void {
    // The policy only ever sees CLOSED outcomes, so clearing it here is what makes the
    // next CLOSED period start from zero.
    this.policy.reset();
    this.moveTo({ kind: 'OPEN', openedAt: now, halfOpenAt: now + this.settings.timeoutMs }, reason, now);
  }

  private halfOpen(now: number): void {
    this.moveTo({ kind: 'HALF_OPEN', inFlight: 0, successes: 0 }, 'timeout-elapsed', now);
  }

  private moveTo(next: CircuitState, reason: TransitionReason, now: number): void {
    const from = this.current.kind;
    this.current = next;
    this.epoch = ++lastEpoch;
    // State is complete before any listener runs, so a listener may read or drive the breaker.
    const change: StateChange = { name: this.name, from, to: next.kind, reason, at: now };
    this.emit(EVENT_FOR[next.kind], change);
    this.emit('stateChange', change);
  }
}

/** "2026-02-21T10:00:00Z", the timestamp shape the admin API answers with. */
function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
