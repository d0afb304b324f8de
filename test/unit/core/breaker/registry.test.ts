import { describe, expect, it } from 'vitest';
import type { CircuitBreaker } from '../../../../core/breaker/circuit-breaker.js';
import { BreakerRegistry } from '../../../../core/breaker/registry.js';
import type { BreakerSettings } from '../../../../core/breaker/settings.js';
import { ManualClock } from '../../../../core/clock.js';

const transcriber: BreakerSettings = {
  failureThreshold: 2,
  successThreshold: 2,
  timeoutMs: 60_000,
  halfOpenMaxCalls: 3,
};

function setup() {
  const clock = new ManualClock();
  const registry = new BreakerRegistry({ clock });
  const log: string[] = [];
  registry.on('added', (b) => log.push(`+${b.name}`));
  registry.on('removed', (b) => log.push(`-${b.name}`));
  return { clock, registry, log };
}

function trip(breaker: CircuitBreaker): void {
  while (breaker.state === 'CLOSED') {
    breaker.canExecute();
    breaker.recordFailure();
  }
}

describe('BreakerRegistry', () => {
  it('creates one breaker per name, named after it, on the registry clock', () => {
    const { registry, clock, log } = setup();
    const live = registry.sync({ transcriber, other: {} });
    expect([...live.keys()]).toEqual(['transcriber', 'other']);
    const breaker = registry.get('transcriber')!;
    expect(breaker.name).toBe('transcriber');
    trip(breaker);
    clock.advance(60_000);
    expect(breaker.state).toBe('HALF_OPEN');
    expect(registry.get('missing')).toBeUndefined();
    expect(log).toEqual(['+transcriber', '+other']);
  });

  it('keeps a breaker whose settings are unchanged, state and all', () => {
    const { registry, log } = setup();
    registry.sync({ transcriber });
    const before = registry.get('transcriber')!;
    trip(before);
    const live = registry.sync({ transcriber: { ...transcriber } });
    expect(live.get('transcriber')).toBe(before);
    expect(before.state).toBe('OPEN');
    expect(log).toEqual(['+transcriber']);
  });

  it('treats omitted settings as their defaults', () => {
    const { registry } = setup();
    registry.sync({ a: {} });
    const before = registry.get('a');
    registry.sync({
      a: { failureThreshold: 5, successThreshold: 2, timeoutMs: 60_000, halfOpenMaxCalls: 3 },
    });
    expect(registry.get('a')).toBe(before);
  });

  it('replaces a breaker whose settings changed, and drops removed ones', () => {
    const { registry, log } = setup();
    registry.sync({ transcriber, other: {} });
    const before = registry.get('transcriber')!;
    trip(before);
    const live = registry.sync({ transcriber: { ...transcriber, timeoutMs: 30_000 } });
    const after = live.get('transcriber')!;
    expect(after).not.toBe(before);
    expect(after.state).toBe('CLOSED');
    expect(after.settings.timeoutMs).toBe(30_000);
    expect(live.has('other')).toBe(false);
    expect(log).toEqual(['+transcriber', '+other', '-other', '-transcriber', '+transcriber']);
  });

  it('notices a change in the optional triggers', () => {
    const { registry } = setup();
    const failureRate = { threshold: 0.5, windowMs: 60_000, minimumCalls: 20 };
    registry.sync({ a: { failureRate } });
    const first = registry.get('a');
    registry.sync({ a: { failureRate: { ...failureRate } } });
    expect(registry.get('a')).toBe(first);
    registry.sync({ a: { failureRate: { ...failureRate, minimumCalls: 10 } } });
    expect(registry.get('a')).not.toBe(first);
    const second = registry.get('a');
    registry.sync({ a: { failureRate: { ...failureRate, minimumCalls: 10 }, slowCallMs: 5_000 } });
    expect(registry.get('a')).not.toBe(second);
  });

  it('rejects an invalid spec whole, changing nothing', () => {
    const { registry } = setup();
    registry.sync({ a: {}, b: {} });
    const a = registry.get('a');
    expect(() => registry.sync({ a: { timeoutMs: 1 }, c: { failureThreshold: 0 } })).toThrow(
      /circuit breaker "c": failureThreshold/,
    );
    expect(registry.get('a')).toBe(a);
    expect(registry.get('b')).toBeDefined();
    expect(registry.get('c')).toBeUndefined();
  });

  it('ensure creates or gets a single breaker by the same rule', () => {
    const { registry } = setup();
    const a = registry.ensure('a', transcriber);
    expect(registry.ensure('a', transcriber)).toBe(a);
    expect(registry.ensure('a', { ...transcriber, failureThreshold: 9 })).not.toBe(a);
  });

  it('serves the admin endpoints: metrics body and reset (false for an unknown name)', () => {
    const { registry } = setup();
    registry.sync({ transcriber });
    trip(registry.get('transcriber')!);
    expect(registry.metrics()).toEqual({
      transcriber: {
        state: 'OPEN',
        failure_count: 2,
        success_count: 0,
        total_calls: 2,
        error_rate: 1,
        last_failure_time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
      },
    });
    expect(registry.reset('transcriber')).toBe(true);
    expect(registry.get('transcriber')!.state).toBe('CLOSED');
    expect(registry.reset('nope')).toBe(false);
    expect([...registry].map(([name]) => name)).toEqual(['transcriber']);
  });
});
