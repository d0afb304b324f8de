// One breaker per upstream, kept across policy reloads: a breaker whose settings are
// unchanged keeps its state and counters; one whose settings changed starts afresh.

import { EventEmitter } from 'node:events';
import { type Clock, systemClock } from '../clock.js';
import { type Breaker, type BreakerMetrics, CircuitBreaker } from './circuit-breaker.js';
import { type BreakerSettings, resolveBreakerSettings, sameBreakerSettings } from './settings.js';

/** Observability subscribes here to follow breakers that a reload creates or retires. */
export type RegistryEvents = {
  added: [breaker: CircuitBreaker];
  removed: [breaker: CircuitBreaker];
};

/** Where a compiled policy gets its breakers: this registry, or a cluster worker's mirrors of one. */
export interface BreakerSource {
  /** The breakers for exactly these upstreams (name → settings); see BreakerRegistry.sync. */
  sync(specs: Readonly<Record<string, BreakerSettings>>): ReadonlyMap<string, Breaker>;
}

export class BreakerRegistry extends EventEmitter<RegistryEvents> implements BreakerSource {
  private readonly breakers = new Map<string, CircuitBreaker>();
  private readonly clock: Clock;

  constructor(options: { clock?: Clock } = {}) {
    super();
    this.clock = options.clock ?? systemClock;
  }

  get(name: string): CircuitBreaker | undefined {
    return this.breakers.get(name);
  }

  /** The breaker for `name` with these settings: the existing one if they are unchanged, else a new one. */
  ensure(name: string, settings: BreakerSettings): CircuitBreaker {
    const wanted = resolveBreakerSettings(name, settings);
    const existing = this.breakers.get(name);
    if (existing !== undefined && sameBreakerSettings(existing.settings, wanted)) return existing;
    const breaker = new CircuitBreaker({ ...settings, name, clock: this.clock });
    this.breakers.set(name, breaker);
    if (existing !== undefined) this.emit('removed', existing);
    this.emit('added', breaker);
    return breaker;
  }

  /**
   * Makes the registry hold exactly `specs` (upstream name → settings), keeping unchanged
   * breakers. Every spec is validated before anything changes, so a bad one changes nothing.
   * Returns the live map.
   */
  sync(specs: Readonly<Record<string, BreakerSettings>>): ReadonlyMap<string, CircuitBreaker> {
    for (const [name, settings] of Object.entries(specs)) resolveBreakerSettings(name, settings);
    for (const [name, breaker] of this.breakers) {
      if (!Object.hasOwn(specs, name)) {
        this.breakers.delete(name);
        this.emit('removed', breaker);
      }
    }
    for (const [name, settings] of Object.entries(specs)) this.ensure(name, settings);
    return this.breakers;
  }

  /** Forces one breaker CLOSED; false when there is none of that name (the admin endpoint's 404). */
  reset(name: string): boolean {
    const breaker = this.breakers.get(name);
    if (breaker === undefined) return false;
    breaker.reset();
    return true;
  }

  /** The /admin/breakers body. */
  metrics(): Record<string, BreakerMetrics> {
    const out: Record<string, BreakerMetrics> = {};
    for (const [name, breaker] of this.breakers) out[name] = breaker.getMetrics();
    return out;
  }

  [Symbol.iterator](): IterableIterator<[string, CircuitBreaker]> {
    return this.breakers.entries();
  }
}
