// The last few breaker transitions, newest first, for the dashboard. It listens to the registry
// like metrics do, so breakers a reload creates are followed, and it holds a fixed number of
// entries whatever the traffic.
import { EventEmitter } from 'node:events';
import type { StateChange } from '../../core/breaker/circuit-breaker.js';
import type { BreakerRegistry } from '../../core/breaker/registry.js';

export type TransitionLogEvents = { transition: [change: StateChange] };

export class TransitionLog extends EventEmitter<TransitionLogEvents> {
  private readonly ring: (StateChange | undefined)[];
  /** Index the next entry goes to. */
  private next = 0;
  private size = 0;

  constructor(registry: BreakerRegistry, capacity = 50) {
    super();
    this.ring = new Array<StateChange | undefined>(capacity);
    // Breakers that exist already (a log attached late) and every one added later.
    for (const [, breaker] of registry) breaker.on('stateChange', (c) => this.push(c));
    registry.on('added', (breaker) => breaker.on('stateChange', (c) => this.push(c)));
  }

  push(change: StateChange): void {
    this.ring[this.next] = change;
    this.next = (this.next + 1) % this.ring.length;
    this.size = Math.min(this.size + 1, this.ring.length);
    this.emit('transition', change);
  }

  /** Up to `limit` entries, newest first. */
  recent(limit = this.ring.length): StateChange[] {
    const out: StateChange[] = [];
    const n = Math.min(limit, this.size);
    for (let i = 1; i <= n; i++) {
      out.push(this.ring[(this.next - i + this.ring.length) % this.ring.length]!);
    }
    return out;
  }
}
