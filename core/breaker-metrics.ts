// The circuit breaker's Prometheus metrics, one shape for every breaker: the proxy's upstream breakers
// and the backend's engine breaker register the same three series on their own registries.
import { Counter, Gauge, type Registry } from 'prom-client';

export const BREAKER_STATE_VALUE = { CLOSED: 0, OPEN: 1, HALF_OPEN: 2 } as const;

export type BreakerStateName = keyof typeof BREAKER_STATE_VALUE;

/** The breaker metrics, shared by the proxy and the backend. */
export class BreakerMetrics {
  readonly state: Gauge<'service'>;
  readonly failures: Counter<'service'>;
  readonly transitions: Counter<'service' | 'to'>;

  constructor(registry: Registry) {
    this.state = new Gauge({
      name: 'circuit_breaker_state',
      help: 'Circuit breaker state (0 CLOSED, 1 OPEN, 2 HALF_OPEN)',
      labelNames: ['service'],
      registers: [registry],
    });
    this.failures = new Counter({
      name: 'circuit_breaker_failures_total',
      help: 'Calls the circuit breaker counted as failures',
      labelNames: ['service'],
      registers: [registry],
    });
    this.transitions = new Counter({
      name: 'circuit_breaker_transitions_total',
      help: 'Circuit breaker state transitions',
      labelNames: ['service', 'to'],
      registers: [registry],
    });
  }

  setState(service: string, state: BreakerStateName): void {
    this.state.set({ service }, BREAKER_STATE_VALUE[state]);
  }

  transition(service: string, to: BreakerStateName): void {
    this.setState(service, to);
    this.transitions.inc({ service, to });
  }
}
