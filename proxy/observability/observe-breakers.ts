// Breaker transitions feed metrics and log lines: a warning with the counts on OPEN, info otherwise.
// Wherever the breakers' state lives (a single proxy, a cluster's primary), this watches it.
import type { BreakerRegistry } from '../../core/breaker/registry.js';
import type { Logger } from '../../core/logger.js';
import type { ProxyMetrics } from './metrics.js';

export function observeBreakers(registry: BreakerRegistry, metrics: ProxyMetrics, logger: Logger): void {
  registry.on('added', (b) => {
    metrics.breakers.setState(b.name, b.state);
    b.on('stateChange', (c) => {
      metrics.breakers.transition(b.name, c.to);
      const m = b.getMetrics();
      if (c.to === 'OPEN') {
        logger.warn(
          { service: b.name, failure_count: m.failure_count, error_rate: m.error_rate, reason: c.reason },
          'circuit breaker opened',
        );
      } else {
        logger.info({ service: b.name, from: c.from, to: c.to, reason: c.reason }, 'circuit breaker ' + c.to);
      }
    });
    b.on('failure', () => metrics.breakers.failures.inc({ service: b.name }));
  });
  registry.on('removed', (b) => b.removeAllListeners());
}
