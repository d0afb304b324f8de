// The dashboard's ring of breaker transitions: newest first, bounded, following breakers that a
// reload adds, and announcing each transition as it is recorded.
import { describe, expect, it } from 'vitest';
import { BreakerRegistry } from '../../../core/breaker/registry.js';
import { ManualClock } from '../../../core/clock.js';
import { TransitionLog } from '../../../proxy/observability/transition-log.js';

const SETTINGS = { failureThreshold: 1, successThreshold: 1, timeoutMs: 1_000, halfOpenMaxCalls: 1 };

describe('TransitionLog', () => {
  it('keeps the newest transitions first, up to its capacity', () => {
    const clock = new ManualClock(0);
    const registry = new BreakerRegistry({ clock });
    const log = new TransitionLog(registry, 4);
    const announced: string[] = [];
    log.on('transition', (c) => announced.push(`${c.from}>${c.to}`));
    const b = registry.ensure('svc', SETTINGS);
    for (let i = 0; i < 2; i++) {
      b.recordFailure(); // CLOSED > OPEN
      clock.advance(1_000);
      expect(b.canExecute()).toBe(true); // OPEN > HALF_OPEN
      b.recordSuccess(); // HALF_OPEN > CLOSED
    }
    expect(announced).toEqual([
      'CLOSED>OPEN',
      'OPEN>HALF_OPEN',
      'HALF_OPEN>CLOSED',
      'CLOSED>OPEN',
      'OPEN>HALF_OPEN',
      'HALF_OPEN>CLOSED',
    ]);
    expect(log.recent().map((c) => `${c.from}>${c.to}@${c.at}`)).toEqual([
      'HALF_OPEN>CLOSED@2000',
      'OPEN>HALF_OPEN@2000',
      'CLOSED>OPEN@1000',
      'HALF_OPEN>CLOSED@1000',
    ]);
    expect(log.recent(1)).toHaveLength(1);
  });

  it('follows breakers that exist already and ones added later', () => {
    const registry = new BreakerRegistry({ clock: new ManualClock(0) });
    const early = registry.ensure('early', SETTINGS);
    const log = new TransitionLog(registry);
    const late = registry.ensure('late', SETTINGS);
    early.recordFailure();
    late.recordFailure();
    expect(log.recent().map((c) => c.name)).toEqual(['late', 'early']);
  });
});
