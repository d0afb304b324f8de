// A cluster worker's breakers: mirrors of the primary's, which alone hold the state, so a breaker trips
// for all workers together. A mirror answers the hot path by itself while the circuit is CLOSED (the
// ticket is the primary's current generation) or OPEN with time left; otherwise (a probe may be due)
// it asks the primary, whose breaker hands out the probe slots. Every outcome goes to the primary.
import type { Breaker, CallOutcome, StateName } from '../../core/breaker/circuit-breaker.js';
import type { BreakerSource } from '../../core/breaker/registry.js';
import type { BreakerSettings } from '../../core/breaker/settings.js';
import type { Clock } from '../../core/clock.js';
import type { BreakerState } from './messages.js';
import type { PrimaryLink } from './primary-link.js';

class MirroredBreaker implements Breaker {
  state: StateName = 'CLOSED';
  private generation = 0;
  private halfOpenAt = 0;

  constructor(
    readonly name: string,
    private readonly link: PrimaryLink,
    private readonly clock: Clock,
  ) {}

  update(s: BreakerState): void {
    this.state = s.state;
    this.generation = s.generation;
    this.halfOpenAt = s.halfOpenAt;
  }

  retryAfterMs(): number {
    return this.state === 'OPEN' ? Math.max(0, this.halfOpenAt - this.clock.now()) : 0;
  }

  admit(): number | null | Promise<number | null> {
    if (this.state === 'CLOSED') return this.generation;
    if (this.state === 'OPEN' && this.clock.now() < this.halfOpenAt) return null;
    return this.link.admit(this.name);
  }

  end(ticket: number, outcome: CallOutcome, durationMs = 0): void {
    this.link.report(this.name, ticket, outcome, durationMs);
  }
}

export class BreakerMirrors implements BreakerSource {
  private readonly mirrors = new Map<string, MirroredBreaker>();

  constructor(
    private readonly link: PrimaryLink,
    private readonly clock: Clock,
  ) {}

  /** A mirror per upstream; the settings are the primary's to apply. */
  sync(specs: Readonly<Record<string, BreakerSettings>>): ReadonlyMap<string, Breaker> {
    for (const name of this.mirrors.keys()) if (!Object.hasOwn(specs, name)) this.mirrors.delete(name);
    for (const name of Object.keys(specs)) {
      if (!this.mirrors.has(name)) this.mirrors.set(name, new MirroredBreaker(name, this.link, this.clock));
    }
    return this.mirrors;
  }

  update(states: readonly BreakerState[]): void {
    for (const s of states) this.mirrors.get(s.name)?.update(s);
  }
}
