// The primary's side of its workers' batches: store calls run on the primary's memory store, probe
// admissions and call outcomes on its breakers, in one synchronous pass per batch. No I/O: the caller
// sends the Answers it returns, and BreakerState snapshots when a breaker changes.
import type { CircuitBreaker } from '../../core/breaker/circuit-breaker.js';
import type { BreakerRegistry } from '../../core/breaker/registry.js';
import type { Clock } from '../../core/clock.js';
import { MemoryRateLimitStore } from '../ratelimit/memory-store.js';
import type { Decision, RateLimitStore, WindowSpec } from '../ratelimit/store.js';
import type { Answers, Batch, BreakerState } from './messages.js';

export interface HubOptions {
  readonly breakers: BreakerRegistry;
  /** The store in force; store calls are answered only while it is the memory store. */
  store(): RateLimitStore;
  readonly clock: Clock;
}

/** The state a worker mirrors (breaker-mirrors.ts). */
export function breakerState(b: CircuitBreaker, clock: Clock): BreakerState {
  const state = b.state;
  return {
    name: b.name,
    state,
    generation: b.generation,
    halfOpenAt: state === 'OPEN' ? clock.now() + b.retryAfterMs() : 0,
  };
}

export class ClusterHub {
  /** Per worker: its window-set ids → the one frozen copy every worker's identical set maps to. */
  private readonly specs = new Map<number, Map<number, readonly WindowSpec[]>>();
  /** One array per distinct window set: the memory store lays its state out per array identity. */
  private readonly canonical = new Map<string, readonly WindowSpec[]>();
  /** Per worker: admissions it holds that were not ended yet ("name\0ticket" → count). */
  private readonly held = new Map<number, Map<string, number>>();

  constructor(private readonly o: HubOptions) {}

  serve(worker: number, b: Batch): Answers {
    let specs = this.specs.get(worker);
    if (specs === undefined) {
      specs = new Map();
      this.specs.set(worker, specs);
    }
    for (const [id, windows] of b.specs) specs.set(id, this.canonicalOf(windows));

    // Outcomes before admissions: a probe that ended frees its slot for the next one.
    for (const [name, ticket, outcome, durationMs] of b.outcomes) {
      this.unhold(worker, name, ticket);
      this.o.breakers.get(name)?.end(ticket, outcome, durationMs);
    }
    const admits = b.admits.map((name) => {
      const ticket = this.o.breakers.get(name)?.admit() ?? null;
      if (ticket !== null) this.hold(worker, name, ticket);
      return ticket;
    });

    const store = this.o.store();
    const decisions = b.calls.map((c): Decision | null => {
      const windows = specs.get(c.spec);
      if (!(store instanceof MemoryRateLimitStore) || windows === undefined) return null;
      if (c.op === 'hit') {
        // A worker is the same program, but a cost the store refuses must not fail the whole batch.
        try {
          return store.hitSync(c.key, windows, c.algorithm, c.cost);
        } catch {
          return null;
        }
      }
      if (c.op === 'peek') return store.peekSync(c.key, windows, c.algorithm);
      void store.reset(c.key);
      return null;
    });
    return { t: 'answers', seq: b.seq, decisions, admits };
  }

  /** A worker is gone: the admissions it held are released, so no probe slot stays taken. */
  forget(worker: number): void {
    const held = this.held.get(worker);
    this.held.delete(worker);
    this.specs.delete(worker);
    if (held === undefined) return;
    for (const [k, n] of held) {
      const [name, ticket] = k.split('\0') as [string, string];
      for (let i = 0; i < n; i++) this.o.breakers.get(name)?.end(Number(ticket), 'release');
    }
  }

  /** Every breaker's state, for a worker that starts or a policy that changes them. */
  states(): BreakerState[] {
    return [...this.o.breakers].map(([, b]) => breakerState(b, this.o.clock));
  }

  private canonicalOf(windows: readonly WindowSpec[]): readonly WindowSpec[] {
    const key = JSON.stringify(windows);
    let c = this.canonical.get(key);
    if (c === undefined) {
      c = Object.freeze(
        windows.map((w) => Object.freeze({ name: w.name, limit: w.limit, windowMs: w.windowMs })),
      );
      this.canonical.set(key, c);
    }
    return c;
  }

  private hold(worker: number, name: string, ticket: number): void {
    let held = this.held.get(worker);
    if (held === undefined) {
      held = new Map();
      this.held.set(worker, held);
    }
    const k = `${name}\0${ticket}`;
    held.set(k, (held.get(k) ?? 0) + 1);
  }

  private unhold(worker: number, name: string, ticket: number): void {
    const held = this.held.get(worker);
    if (held === undefined || held.size === 0) return;
    const k = `${name}\0${ticket}`;
    const n = held.get(k);
    if (n === undefined) return;
    if (n <= 1) held.delete(k);
    else held.set(k, n - 1);
  }
}
