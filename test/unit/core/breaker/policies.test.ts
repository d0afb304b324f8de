import { describe, expect, it } from 'vitest';
import {
  AnyOfPolicy,
  ConsecutiveFailuresPolicy,
  FailureRatePolicy,
  type TripPolicy,
  tripPolicyFor,
} from '../../../../core/breaker/policies.js';
import { resolveBreakerSettings } from '../../../../core/breaker/settings.js';

const T0 = 1_700_000_000_000;

describe('ConsecutiveFailuresPolicy', () => {
  it('trips at the threshold; a success or reset starts over', () => {
    const p = new ConsecutiveFailuresPolicy(2);
    p.onFailure();
    expect(p.shouldTrip()).toBe(false);
    p.onSuccess();
    p.onFailure();
    expect(p.shouldTrip()).toBe(false);
    p.onFailure();
    expect(p.shouldTrip()).toBe(true);
    p.reset();
    expect(p.shouldTrip()).toBe(false);
  });
});

describe('FailureRatePolicy', () => {
  const make = (over: Partial<ConstructorParameters<typeof FailureRatePolicy>[0]> = {}) =>
    new FailureRatePolicy({ threshold: 0.5, windowMs: 10_000, minimumCalls: 4, buckets: 10, ...over });

  it('needs minimumCalls before the rate counts', () => {
    const p = make();
    for (let i = 0; i < 3; i++) p.onFailure(T0);
    expect(p.shouldTrip(T0)).toBe(false);
    p.onSuccess(T0);
    expect(p.counts(T0)).toEqual({ calls: 4, failures: 3 });
    expect(p.shouldTrip(T0)).toBe(true);
  });

  it('trips at exactly the threshold, not below', () => {
    const p = make();
    p.onFailure(T0);
    p.onSuccess(T0);
    p.onSuccess(T0);
    p.onSuccess(T0);
    expect(p.shouldTrip(T0)).toBe(false); // 0.25
    p.onFailure(T0);
    p.onFailure(T0);
    expect(p.shouldTrip(T0)).toBe(true); // 3/6
  });

  it('rolls bucket by bucket, lazily, as time passes', () => {
    const p = make(); // 1 s buckets
    p.onFailure(T0); // bucket 0
    p.onFailure(T0 + 1_000); // bucket 1
    p.onFailure(T0 + 5_000); // bucket 5
    expect(p.counts(T0 + 9_999).calls).toBe(3);
    expect(p.counts(T0 + 10_000).calls).toBe(2); // bucket 0 has left the window
    expect(p.counts(T0 + 11_000).calls).toBe(1);
    expect(p.counts(T0 + 15_000).calls).toBe(0);
  });

  it('forgets everything after a gap longer than the window', () => {
    const p = make();
    for (let i = 0; i < 10; i++) p.onFailure(T0 + i * 100);
    expect(p.counts(T0 + 60_000)).toEqual({ calls: 0, failures: 0 });
    expect(p.shouldTrip(T0 + 60_000)).toBe(false);
  });

  it('a clock that steps back keeps counting in the current bucket', () => {
    const p = make();
    p.onFailure(T0 + 5_000);
    p.onFailure(T0);
    expect(p.counts(T0 + 5_000)).toEqual({ calls: 2, failures: 2 });
  });

  it('reset empties the window', () => {
    const p = make();
    for (let i = 0; i < 5; i++) p.onFailure(T0);
    p.reset();
    expect(p.counts(T0)).toEqual({ calls: 0, failures: 0 });
  });
});

describe('AnyOfPolicy', () => {
  it('trips when any member does, and feeds and resets them all', () => {
    const consecutive = new ConsecutiveFailuresPolicy(3);
    const rate = new FailureRatePolicy({ threshold: 0.5, windowMs: 1_000, minimumCalls: 2, buckets: 1 });
    const any: TripPolicy = new AnyOfPolicy([consecutive, rate]);
    any.onSuccess(T0);
    any.onFailure(T0);
    expect(consecutive.shouldTrip()).toBe(false);
    expect(rate.shouldTrip(T0)).toBe(true);
    expect(any.shouldTrip(T0)).toBe(true);
    any.reset();
    expect(any.shouldTrip(T0)).toBe(false);
    expect(rate.counts(T0).calls).toBe(0);
  });
});

describe('tripPolicyFor', () => {
  it('builds only what the settings ask for', () => {
    expect(tripPolicyFor(resolveBreakerSettings('a', {}))).toBeInstanceOf(ConsecutiveFailuresPolicy);
    const both = tripPolicyFor(
      resolveBreakerSettings('b', { failureRate: { threshold: 0.5, windowMs: 1_000, minimumCalls: 1 } }),
    );
    expect(both).toBeInstanceOf(AnyOfPolicy);
  });
});
