import { describe, expect, it } from 'vitest';
import {
  type BreakerEvents,
  type BreakerOptions,
  CircuitBreaker,
  type StateChange,
} from '../../../../core/breaker/circuit-breaker.js';
import {
  CircuitBreakerOpenError,
  isCircuitBreakerOpenError,
} from '../../../../core/breaker/circuit-breaker-open-error.js';
import { ManualClock } from '../../../../core/clock.js';

const T0 = Date.UTC(2026, 1, 21, 10, 0, 0);

function setup(options: BreakerOptions = {}) {
  const clock = new ManualClock(T0);
  const breaker = new CircuitBreaker({
    name: 'transcriber',
    failureThreshold: 3,
    successThreshold: 2,
    timeoutMs: 60_000,
    halfOpenMaxCalls: 3,
    clock,
    ...options,
  });
  const events: Array<[keyof BreakerEvents, unknown]> = [];
  for (const type of ['open', 'halfOpen', 'close', 'stateChange', 'failure'] as const) {
    breaker.on(type, (payload: unknown) => events.push([type, payload]));
  }
  const transitions = () => events.filter(([type]) => type !== 'stateChange' && type !== 'failure');
  return { clock, breaker, events, transitions };
}

function fail(breaker: CircuitBreaker, times = 1): void {
  for (let i = 0; i < times; i++) {
    expect(breaker.canExecute()).toBe(true);
    breaker.recordFailure();
  }
}

function succeed(breaker: CircuitBreaker, times = 1): void {
  for (let i = 0; i < times; i++) {
    expect(breaker.canExecute()).toBe(true);
    breaker.recordSuccess();
  }
}

/** A promise settled from outside, to hold calls in flight. */
function deferred<T = string>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function openIt(breaker: CircuitBreaker): void {
  fail(breaker, breaker.settings.failureThreshold);
  expect(breaker.state).toBe('OPEN');
}

describe('CircuitBreaker: open, fail fast, half-open, close', () => {
  it('opens after 3 failures, then fails fast with CircuitBreakerOpenError', async () => {
    const { breaker } = setup({ failureThreshold: 3 });
    for (let i = 0; i < 3; i++) {
      await expect(
        breaker.execute(() => {
          throw new Error('fail');
        }),
      ).rejects.toThrow('fail');
    }
    expect(breaker.state).toBe('OPEN');

    let ran = false;
    const error = await breaker
      .execute(() => {
        ran = true;
      })
      .catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect(error).toBeInstanceOf(CircuitBreakerOpenError);
    expect(isCircuitBreakerOpenError(error)).toBe(true);
  });
});

describe('CircuitBreaker: CLOSED', () => {
  it('starts CLOSED and admits calls', () => {
    const { breaker } = setup();
    expect(breaker.state).toBe('CLOSED');
    expect(breaker.canExecute()).toBe(true);
    expect(breaker.retryAfterMs()).toBe(0);
  });

  it('a success resets the consecutive failure count', () => {
    const { breaker } = setup({ failureThreshold: 3 });
    fail(breaker, 2);
    succeed(breaker);
    fail(breaker, 2);
    expect(breaker.state).toBe('CLOSED');
    fail(breaker);
    expect(breaker.state).toBe('OPEN');
  });

  it('admits without reading the clock (the hot path)', () => {
    const clock = new ManualClock(T0);
    let reads = 0;
    const counting = {
      now: () => {
        reads++;
        return clock.now();
      },
    };
    const breaker = new CircuitBreaker({ clock: counting });
    for (let i = 0; i < 1000; i++) breaker.canExecute();
    expect(reads).toBe(0);
  });
});

describe('CircuitBreaker: OPEN', () => {
  it('rejects every call until the timeout passes', () => {
    const { breaker, clock } = setup();
    openIt(breaker);
    expect(breaker.canExecute()).toBe(false);
    clock.advance(59_999);
    expect(breaker.canExecute()).toBe(false);
    expect(breaker.state).toBe('OPEN');
  });

  it('reports the time left OPEN', async () => {
    const { breaker, clock } = setup();
    openIt(breaker);
    expect(breaker.retryAfterMs()).toBe(60_000);
    clock.advance(17_500);
    expect(breaker.retryAfterMs()).toBe(42_500);

    const error = (await breaker.execute(() => 'never').catch((e: unknown) => e)) as CircuitBreakerOpenError;
    expect(error.code).toBe('circuit_open');
    expect(error.state).toBe('OPEN');
    expect(error.breakerName).toBe('transcriber');
    expect(error.retryAfterMs).toBe(42_500);
    expect(error.retryAfter).toBe(43);

    clock.advance(42_499);
    expect(breaker.rejectionError().retryAfterMs).toBe(1);
    expect(breaker.rejectionError().retryAfter).toBe(1);
  });

  it('ignores outcomes that arrive while OPEN (calls admitted before it opened)', () => {
    const { breaker, clock, transitions } = setup();
    expect(breaker.canExecute()).toBe(true); // a slow call, admitted while CLOSED
    openIt(breaker);
    clock.advance(30_000);
    breaker.recordFailure();
    breaker.release();
    expect(breaker.retryAfterMs()).toBe(30_000); // the timeout was not extended
    expect(transitions()).toHaveLength(1);
  });

  it('turns HALF_OPEN lazily when the clock passes, emitting halfOpen then, once', () => {
    const { breaker, clock, events } = setup();
    openIt(breaker);
    clock.advance(60_000);
    // Nothing happens until someone looks: no timers.
    expect(events.filter(([t]) => t === 'halfOpen')).toHaveLength(0);
    expect(breaker.retryAfterMs()).toBe(0);
    expect(breaker.state).toBe('HALF_OPEN');
    expect(breaker.state).toBe('HALF_OPEN');
    const halfOpens = events.filter(([t]) => t === 'halfOpen');
    expect(halfOpens).toEqual([
      [
        'halfOpen',
        { name: 'transcriber', from: 'OPEN', to: 'HALF_OPEN', reason: 'timeout-elapsed', at: T0 + 60_000 },
      ],
    ]);
  });

  it('canExecute also notices the timeout has passed', () => {
    const { breaker, clock, transitions } = setup();
    openIt(breaker);
    clock.advance(60_001);
    expect(breaker.canExecute()).toBe(true);
    expect(transitions().map(([t]) => t)).toEqual(['open', 'halfOpen']);
  });
});

describe('CircuitBreaker: HALF_OPEN', () => {
  function halfOpen(options: BreakerOptions = {}) {
    const s = setup(options);
    openIt(s.breaker);
    s.clock.advance(60_000);
    expect(s.breaker.state).toBe('HALF_OPEN');
    return s;
  }

  it('closes after successThreshold successful probes, with fresh counters', () => {
    const { breaker } = halfOpen({ successThreshold: 2 });
    succeed(breaker);
    expect(breaker.state).toBe('HALF_OPEN');
    succeed(breaker);
    expect(breaker.state).toBe('CLOSED');
    // The failures that opened it were forgotten: it takes a full threshold again.
    fail(breaker, 2);
    expect(breaker.state).toBe('CLOSED');
    fail(breaker);
    expect(breaker.state).toBe('OPEN');
  });

  it('any failed probe reopens it, with a new timeout', () => {
    const { breaker, clock, transitions } = halfOpen();
    clock.advance(5_000);
    succeed(breaker);
    fail(breaker);
    expect(breaker.state).toBe('OPEN');
    expect(breaker.retryAfterMs()).toBe(60_000);
    const last = transitions().at(-1);
    expect(last).toEqual([
      'open',
      { name: 'transcriber', from: 'HALF_OPEN', to: 'OPEN', reason: 'probe-failed', at: T0 + 65_000 },
    ]);
  });

  it('admits halfOpenMaxCalls probes at once, rejects the rest, and release frees a slot', async () => {
    const { breaker } = halfOpen({ halfOpenMaxCalls: 3 });
    expect([breaker.canExecute(), breaker.canExecute(), breaker.canExecute()]).toEqual([true, true, true]);
    expect(breaker.canExecute()).toBe(false);
    expect(breaker.canExecute()).toBe(false);

    const error = (await breaker.execute(() => 'never').catch((e: unknown) => e)) as CircuitBreakerOpenError;
    expect(isCircuitBreakerOpenError(error)).toBe(true);
    expect(error.state).toBe('HALF_OPEN');
    expect(error.retryAfter).toBe(1);

    breaker.release(); // a client aborted: the probe counts nowhere
    expect(breaker.state).toBe('HALF_OPEN');
    expect(breaker.canExecute()).toBe(true);
    expect(breaker.canExecute()).toBe(false);
    expect(breaker.getMetrics().total_calls).toBe(3); // only the failures that opened it
  });

  it('concurrent probes through execute: the rest fail fast, and a straggler moves nothing', async () => {
    const { breaker } = halfOpen({ failureThreshold: 1, halfOpenMaxCalls: 3, successThreshold: 2 });
    const calls = [deferred(), deferred(), deferred()];
    const running = calls.map((d) => breaker.execute(() => d.promise));
    await expect(breaker.execute(() => 'fourth')).rejects.toMatchObject({
      code: 'circuit_open',
      state: 'HALF_OPEN',
    });

    calls[0]!.resolve('a');
    calls[1]!.resolve('b');
    await expect(Promise.all(running.slice(0, 2))).resolves.toEqual(['a', 'b']);
    expect(breaker.state).toBe('CLOSED');

    // The third probe fails after the circuit closed: counted, but it does not trip.
    calls[2]!.reject(new Error('late'));
    await expect(running[2]).rejects.toThrow('late');
    expect(breaker.state).toBe('CLOSED');
    expect(breaker.getMetrics()).toMatchObject({ failure_count: 2, success_count: 2, total_calls: 4 });
  });

  it('frees slots as probes finish, so more than halfOpenMaxCalls probes can close it', () => {
    const { breaker } = halfOpen({ halfOpenMaxCalls: 1, successThreshold: 3 });
    for (let i = 0; i < 2; i++) {
      expect(breaker.canExecute()).toBe(true);
      expect(breaker.canExecute()).toBe(false);
      breaker.recordSuccess();
    }
    expect(breaker.state).toBe('HALF_OPEN');
    succeed(breaker);
    expect(breaker.state).toBe('CLOSED');
  });

  it('a call admitted while CLOSED that ends in HALF_OPEN takes no probe slot (execute)', async () => {
    const { breaker, clock } = setup({ halfOpenMaxCalls: 1, successThreshold: 1 });
    const slow = deferred();
    const running = breaker.execute(() => slow.promise);
    openIt(breaker);
    clock.advance(60_000);
    expect(breaker.canExecute()).toBe(true); // the one probe
    slow.resolve('late');
    await running;
    expect(breaker.state).toBe('HALF_OPEN'); // the straggler's success did not close it
    expect(breaker.canExecute()).toBe(false); // nor free the probe's slot
  });

  it('with the manual API, an outcome with no probe in flight is not taken as a probe', () => {
    const { breaker } = halfOpen();
    breaker.recordFailure();
    breaker.release();
    expect(breaker.state).toBe('HALF_OPEN');
  });
});

describe('CircuitBreaker: events', () => {
  it('fires each transition exactly once, then stateChange, with payloads', () => {
    const { breaker, clock, events } = setup();
    openIt(breaker);
    clock.advance(60_000);
    succeed(breaker, 2);

    const changes = events.filter(([t]) => t !== 'failure');
    const open: StateChange = { name: 'transcriber', from: 'CLOSED', to: 'OPEN', reason: 'tripped', at: T0 };
    const half: StateChange = {
      name: 'transcriber',
      from: 'OPEN',
      to: 'HALF_OPEN',
      reason: 'timeout-elapsed',
      at: T0 + 60_000,
    };
    const close: StateChange = {
      name: 'transcriber',
      from: 'HALF_OPEN',
      to: 'CLOSED',
      reason: 'probes-succeeded',
      at: T0 + 60_000,
    };
    expect(changes).toEqual([
      ['open', open],
      ['stateChange', open],
      ['halfOpen', half],
      ['stateChange', half],
      ['close', close],
      ['stateChange', close],
    ]);
  });

  it('emits failure for every counted failure, marking slow ones', () => {
    const { breaker, events } = setup({ slowCallMs: 100, failureThreshold: 10 });
    fail(breaker);
    expect(breaker.canExecute()).toBe(true);
    breaker.recordSuccess(101);
    expect(events.filter(([t]) => t === 'failure')).toEqual([
      ['failure', { name: 'transcriber', at: T0, slow: false }],
      ['failure', { name: 'transcriber', at: T0, slow: true }],
    ]);
  });

  it('lets a listener read the breaker: state is complete before events fire', () => {
    const { breaker } = setup();
    const seen: string[] = [];
    breaker.on('open', () => seen.push(`${breaker.state}:${breaker.retryAfterMs()}`));
    openIt(breaker);
    expect(seen).toEqual(['OPEN:60000']);
  });
});

describe('CircuitBreaker: failure-rate trigger', () => {
  const failureRate = { threshold: 0.5, windowMs: 60_000, minimumCalls: 20 };

  it('does not trip below minimumCalls, however bad the rate', () => {
    const { breaker } = setup({ failureThreshold: 1_000, failureRate });
    fail(breaker, 19);
    expect(breaker.state).toBe('CLOSED');
    fail(breaker);
    expect(breaker.state).toBe('OPEN');
  });

  it('trips when the rate reaches the threshold over at least minimumCalls', () => {
    const { breaker, transitions } = setup({ failureThreshold: 3, failureRate });
    // Alternating, so the consecutive rule never fires.
    for (let i = 0; i < 9; i++) {
      fail(breaker);
      succeed(breaker);
    }
    succeed(breaker, 2); // 20 calls, 9 failures: 0.45
    expect(breaker.state).toBe('CLOSED');
    fail(breaker); // 21 calls, 10 failures: 0.476
    expect(breaker.state).toBe('CLOSED');
    fail(breaker); // 22 calls, 11 failures: 0.5
    expect(breaker.state).toBe('OPEN');
    expect(transitions()).toEqual([['open', expect.objectContaining({ reason: 'tripped' })]]);
  });

  it('forgets calls that have left the window', () => {
    const { breaker, clock } = setup({ failureThreshold: 1_000, failureRate });
    fail(breaker, 15);
    clock.advance(60_000);
    fail(breaker, 10);
    expect(breaker.state).toBe('CLOSED'); // only 10 calls in the window
    fail(breaker, 10);
    expect(breaker.state).toBe('OPEN');
  });

  it('the consecutive rule still applies alongside it', () => {
    const { breaker } = setup({ failureThreshold: 3, failureRate });
    fail(breaker, 3);
    expect(breaker.state).toBe('OPEN');
  });
});

describe('CircuitBreaker: slow-call trigger', () => {
  it('counts a success slower than slowCallMs as a failure (manual API)', () => {
    const { breaker } = setup({ failureThreshold: 2, slowCallMs: 5_000 });
    succeed(breaker); // no duration: never slow
    expect(breaker.canExecute()).toBe(true);
    breaker.recordSuccess(5_000); // not slower than the limit
    expect(breaker.canExecute()).toBe(true);
    breaker.recordSuccess(5_001);
    expect(breaker.state).toBe('CLOSED');
    expect(breaker.canExecute()).toBe(true);
    breaker.recordSuccess(9_000);
    expect(breaker.state).toBe('OPEN');
    expect(breaker.getMetrics()).toMatchObject({ success_count: 2, failure_count: 2 });
  });

  it('times calls through execute on the injected clock', async () => {
    const { breaker, clock } = setup({ failureThreshold: 2, slowCallMs: 5_000 });
    const slow = async () => {
      clock.advance(6_000);
      return 'ok';
    };
    await expect(breaker.execute(slow)).resolves.toBe('ok'); // the caller still gets its result
    await expect(breaker.execute(slow)).resolves.toBe('ok');
    expect(breaker.state).toBe('OPEN');
  });
});

describe('CircuitBreaker: execute and wrap', () => {
  it('execute returns the result of sync and async work and rethrows its error', async () => {
    const { breaker } = setup();
    await expect(breaker.execute(() => 42)).resolves.toBe(42);
    await expect(breaker.execute(async () => 'x')).resolves.toBe('x');
    const boom = new Error('boom');
    await expect(breaker.execute(() => Promise.reject(boom))).rejects.toBe(boom);
    expect(breaker.getMetrics()).toMatchObject({ success_count: 2, failure_count: 1 });
  });

  it('wrap keeps the arguments, the return value and this', async () => {
    const { breaker } = setup({ failureThreshold: 1 });
    const service = {
      prefix: 'hello',
      greet(name: string, times: number): Promise<string> {
        return Promise.resolve(`${this.prefix} ${name}`.repeat(times));
      },
    };
    service.greet = breaker.wrap(service.greet);
    await expect(service.greet('ana', 2)).resolves.toBe('hello anahello ana');

    const failing = breaker.wrap((code: number): number => {
      throw new Error(`failed ${code}`);
    });
    await expect(failing(7)).rejects.toThrow('failed 7');
    await expect(failing(8)).rejects.toBeInstanceOf(CircuitBreakerOpenError);
  });

  it('isFailure: an error that says nothing about the dependency releases the call', async () => {
    const { breaker, clock } = setup({
      failureThreshold: 1,
      halfOpenMaxCalls: 1,
      isFailure: (e) => !(e instanceof TypeError),
    });
    await expect(breaker.execute(() => Promise.reject(new TypeError('bad input')))).rejects.toThrow();
    expect(breaker.state).toBe('CLOSED');
    expect(breaker.getMetrics().total_calls).toBe(0);

    openIt(breaker);
    clock.advance(60_000);
    await expect(breaker.execute(() => Promise.reject(new TypeError('bad input')))).rejects.toThrow();
    expect(breaker.state).toBe('HALF_OPEN');
    expect(breaker.canExecute()).toBe(true); // the slot was freed
  });
});

describe('CircuitBreaker: getMetrics and reset', () => {
  it('has exactly the /admin/breakers shape', () => {
    const { breaker } = setup();
    const metrics = breaker.getMetrics();
    expect(Object.keys(metrics)).toEqual([
      'state',
      'failure_count',
      'success_count',
      'total_calls',
      'error_rate',
      'last_failure_time',
    ]);
    expect(metrics).toEqual({
      state: 'CLOSED',
      failure_count: 0,
      success_count: 0,
      total_calls: 0,
      error_rate: 0,
      last_failure_time: null,
    });
  });

  it('counts lifetime totals; releases and rejections count nowhere', () => {
    const { breaker, clock } = setup({ failureThreshold: 3 });
    succeed(breaker, 150);
    clock.advance(1_234);
    fail(breaker, 2);
    expect(breaker.canExecute()).toBe(true);
    breaker.release();
    expect(breaker.getMetrics()).toEqual({
      state: 'CLOSED',
      failure_count: 2,
      success_count: 150,
      total_calls: 152,
      error_rate: 2 / 152,
      last_failure_time: '2026-02-21T10:00:01Z',
    });
    fail(breaker);
    expect(breaker.canExecute()).toBe(false);
    expect(breaker.getMetrics()).toMatchObject({ state: 'OPEN', failure_count: 3, total_calls: 153 });
  });

  it('shows HALF_OPEN once the timeout passed', () => {
    const { breaker, clock } = setup();
    openIt(breaker);
    clock.advance(60_000);
    expect(breaker.getMetrics().state).toBe('HALF_OPEN');
  });

  it('reset forces CLOSED, zeroes the counters and emits close once', () => {
    const { breaker, transitions } = setup();
    openIt(breaker);
    breaker.reset();
    expect(breaker.state).toBe('CLOSED');
    expect(breaker.canExecute()).toBe(true);
    expect(breaker.getMetrics()).toEqual({
      state: 'CLOSED',
      failure_count: 0,
      success_count: 0,
      total_calls: 0,
      error_rate: 0,
      last_failure_time: null,
    });
    breaker.reset(); // already closed: no event
    expect(transitions()).toEqual([
      ['open', expect.objectContaining({ to: 'OPEN' })],
      ['close', { name: 'transcriber', from: 'OPEN', to: 'CLOSED', reason: 'reset', at: T0 }],
    ]);
    fail(breaker, 2); // the policy was reset too
    expect(breaker.state).toBe('CLOSED');
  });

  it('calls in flight across a reset count in the totals but not toward tripping', async () => {
    const { breaker } = setup({ failureThreshold: 2 });
    const slow = deferred();
    const running = breaker.execute(() => slow.promise);
    breaker.reset();
    fail(breaker);
    slow.reject(new Error('late'));
    await expect(running).rejects.toThrow('late');
    expect(breaker.state).toBe('CLOSED');
    expect(breaker.getMetrics().failure_count).toBe(2);
    fail(breaker);
    expect(breaker.state).toBe('OPEN');
  });

  it('reset from HALF_OPEN', () => {
    const { breaker, clock } = setup();
    openIt(breaker);
    clock.advance(60_000);
    expect(breaker.canExecute()).toBe(true);
    breaker.reset();
    expect(breaker.state).toBe('CLOSED');
  });
});

describe('CircuitBreaker: settings', () => {
  it('uses the documented defaults', () => {
    const breaker = new CircuitBreaker();
    expect(breaker.settings).toMatchObject({
      failureThreshold: 5,
      successThreshold: 2,
      timeoutMs: 60_000,
      halfOpenMaxCalls: 3,
      failureRate: null,
      slowCallMs: null,
    });
    expect(Object.isFrozen(breaker.settings)).toBe(true);
  });

  it.each<[BreakerOptions, RegExp]>([
    [{ failureThreshold: 0 }, /failureThreshold must be an integer >= 1, got 0/],
    [{ successThreshold: 1.5 }, /successThreshold must be an integer >= 1/],
    [{ timeoutMs: -1 }, /timeoutMs must be a finite number >= 0/],
    [{ halfOpenMaxCalls: 0 }, /halfOpenMaxCalls/],
    [{ slowCallMs: 0 }, /slowCallMs must be a finite number > 0/],
    [
      { failureRate: { threshold: 1.5, windowMs: 1000, minimumCalls: 1 } },
      /failureRate.threshold must be in \(0, 1\]/,
    ],
    [{ failureRate: { threshold: 0.5, windowMs: 0, minimumCalls: 1 } }, /failureRate.windowMs/],
    [{ failureRate: { threshold: 0.5, windowMs: 1000, minimumCalls: 0 } }, /failureRate.minimumCalls/],
  ])('rejects %o', (options, message) => {
    expect(() => new CircuitBreaker({ name: 'x', ...options })).toThrow(RangeError);
    expect(() => new CircuitBreaker({ name: 'x', ...options })).toThrow(message);
  });
});

describe('isCircuitBreakerOpenError', () => {
  it('matches by brand, not by class identity', () => {
    const error = new CircuitBreakerOpenError('svc', 'OPEN', 1_500);
    expect(isCircuitBreakerOpenError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'circuit_open', name: 'CircuitBreakerOpenError', retryAfter: 2 });
    // Another copy of the module makes another class, with the same Symbol.for brand (core/errors.ts).
    const foreign = { [Symbol.for('floodgate.error')]: 'CircuitBreakerOpenError', code: 'circuit_open' };
    expect(isCircuitBreakerOpenError(foreign)).toBe(true);
    expect(isCircuitBreakerOpenError({ [Symbol.for('floodgate.error')]: 'ApiError' })).toBe(false);
    expect(isCircuitBreakerOpenError(new Error('circuit open'))).toBe(false);
    expect(isCircuitBreakerOpenError(null)).toBe(false);
    expect(isCircuitBreakerOpenError('circuit_open')).toBe(false);
  });

  it('never advises retrying in under a second', () => {
    expect(new CircuitBreakerOpenError('svc', 'OPEN', 0).retryAfter).toBe(1);
    expect(new CircuitBreakerOpenError('svc', 'OPEN', 1_000).retryAfter).toBe(1);
    expect(new CircuitBreakerOpenError('svc', 'OPEN', 1_001).retryAfter).toBe(2);
  });
});

describe('CircuitBreaker: tickets', () => {
  it('ignores a ticket from another breaker or an earlier state, but counts its outcome', () => {
    const { breaker, clock } = setup();
    const other = new CircuitBreaker({ name: 'other', clock });
    const foreign = other.admit()!;
    const stale = breaker.admit()!;
    openIt(breaker);
    clock.advance(60_000);
    const probe = breaker.admit()!;
    expect(breaker.state).toBe('HALF_OPEN');
    // Neither a foreign nor a CLOSED-era ticket is a probe: the state stays.
    breaker.end(foreign, 'failure');
    breaker.end(stale, 'failure');
    expect(breaker.state).toBe('HALF_OPEN');
    expect(breaker.getMetrics().failure_count).toBe(5);
    breaker.end(probe, 'success');
    breaker.end(breaker.admit()!, 'success');
    expect(breaker.state).toBe('CLOSED');
  });

  it('counts a success slower than slowCallMs as a failure', () => {
    const { breaker } = setup({ slowCallMs: 100, failureThreshold: 1 });
    breaker.end(breaker.admit()!, 'success', 101);
    expect(breaker.state).toBe('OPEN');
  });

  it('frees a probe slot on release without counting anything', () => {
    const { breaker, clock } = setup({ halfOpenMaxCalls: 1 });
    openIt(breaker);
    clock.advance(60_000);
    const probe = breaker.admit()!;
    expect(breaker.admit()).toBeNull();
    breaker.end(probe, 'release');
    expect(breaker.admit()).not.toBeNull();
    expect(breaker.getMetrics().total_calls).toBe(3);
  });
});
