// The proxy's Prometheus metrics (the README's "Metrics and logs"). One Registry per proxy instance (tests run several in a
// process). Label handles are cached so the hot path does a Map lookup, not a label merge.
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import { BreakerMetrics } from '../../core/breaker-metrics.js';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const STORE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

export type Decision = 'allowed' | 'limited' | 'shadow_limited' | 'allowlisted';

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly breakers = new BreakerMetrics(this.registry);
  readonly rateLimitHits = new Counter({
    name: 'rate_limit_hits_total',
    help: 'Requests rejected by a rate limit',
    labelNames: ['endpoint'],
    registers: [this.registry],
  });
  readonly rateLimitRequests = new Counter({
    name: 'rate_limit_requests_total',
    help: 'Rate limit decisions',
    labelNames: ['endpoint', 'decision'],
    registers: [this.registry],
  });
  readonly storeErrors = new Counter({
    name: 'rate_limit_store_errors_total',
    help: 'Rate limit store calls that failed or timed out',
    registers: [this.registry],
  });
  readonly storeEvictions = new Counter({
    name: 'rate_limit_store_evictions_total',
    help: 'Identities the memory store forgot to stay within store.max_keys; limited="true": one at or over its limit (the cap is too small for the traffic)',
    labelNames: ['limited'],
    registers: [this.registry],
  });
  readonly storeDuration = new Histogram({
    name: 'rate_limit_store_duration_seconds',
    help: 'Duration of one rate limit store call',
    buckets: STORE_BUCKETS,
    registers: [this.registry],
  });
  readonly requests = new Counter({
    name: 'proxy_requests_total',
    help: 'Requests answered by the proxy',
    labelNames: ['route', 'upstream', 'status'],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'proxy_request_duration_seconds',
    help: 'Time from request to the end of the response',
    labelNames: ['route', 'upstream'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly reloads = new Counter({
    name: 'config_reloads_total',
    help: 'Policy loads by result',
    labelNames: ['result'],
    registers: [this.registry],
  });

  private readonly requestHandles = new Map<string, Map<string, Map<number, Counter.Internal>>>();
  private readonly decisionHandles = new Map<string, Map<Decision, Counter.Internal>>();

  constructor({ defaultMetrics = true } = {}) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }

  countRequest(route: string, upstream: string, status: number): void {
    // Nested maps keyed by the strings the runtime already holds: a key built per request would be a
    // new string to hash every time.
    let byUpstream = this.requestHandles.get(route);
    if (byUpstream === undefined) {
      byUpstream = new Map();
      this.requestHandles.set(route, byUpstream);
    }
    let byStatus = byUpstream.get(upstream);
    if (byStatus === undefined) {
      byStatus = new Map();
      byUpstream.set(upstream, byStatus);
    }
    let handle = byStatus.get(status);
    if (handle === undefined) {
      handle = this.requests.labels({ route, upstream, status: String(status) });
      byStatus.set(status, handle);
    }
    handle.inc();
  }

  countDecision(endpoint: string, decision: Decision): void {
    let byDecision = this.decisionHandles.get(endpoint);
    if (byDecision === undefined) {
      byDecision = new Map();
      this.decisionHandles.set(endpoint, byDecision);
    }
    let handle = byDecision.get(decision);
    if (handle === undefined) {
      handle = this.rateLimitRequests.labels({ endpoint, decision });
      byDecision.set(decision, handle);
    }
    handle.inc();
    if (decision === 'limited') this.rateLimitHits.inc({ endpoint });
  }

  durationHandle(route: string, upstream: string): Histogram.Internal<'route' | 'upstream'> {
    return this.duration.labels({ route, upstream });
  }
}
