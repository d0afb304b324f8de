// A cluster worker's rate limit store when the policy says `store.type: memory`: the counters live in
// the primary, so every worker's decisions meet in one place and limits stay exact across workers.
// Calls travel in the worker's per-turn batch (primary-link.ts).
import { StoreUnavailableError } from '../ratelimit/guarded-store.js';
import {
  type Algorithm,
  checkCost,
  type Decision,
  type RateLimitStore,
  type WindowSpec,
} from '../ratelimit/store.js';
import type { PrimaryLink } from './primary-link.js';

const NO_WINDOWS: readonly WindowSpec[] = Object.freeze([]);

function decided(d: Decision | null): Decision {
  if (d === null) throw new StoreUnavailableError();
  return d;
}

export class RemoteStore implements RateLimitStore {
  constructor(private readonly link: PrimaryLink) {}

  hit(key: string, windows: readonly WindowSpec[], algorithm: Algorithm, cost = 1): Promise<Decision> {
    // Checked before it travels: the primary would only answer null, which reads as a failed store.
    try {
      checkCost(cost);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.link.store('hit', key, windows, algorithm, cost).then(decided);
  }

  peek(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision> {
    return this.link.store('peek', key, windows, algorithm, 1).then(decided);
  }

  async reset(key: string): Promise<void> {
    await this.link.store('reset', key, NO_WINDOWS, 'sliding-log', 1);
  }

  /** The counters are the primary's: nothing to close here. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
