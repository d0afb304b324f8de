// What the dashboard shows, gathered in one JSON document: breakers with their recent transitions,
// per-route request and decision totals (the page turns consecutive totals into rates), store health
// and the policy in force. Totals come from the same counters /metrics exposes, so the page and
// Prometheus never disagree.

import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import type { BreakerMetrics, CircuitBreaker, StateName } from '../../../core/breaker/circuit-breaker.js';
import type { TransitionLog } from '../../observability/transition-log.js';
import type { Runtime } from '../runtime.js';

export interface DashboardSources {
  readonly breakers: Iterable<[string, CircuitBreaker]>;
  readonly transitions: TransitionLog;
  /** The registry to read totals from: the process's own, or a cluster's aggregate of its workers. */
  registry(): Promise<Registry>;
  runtime(): Runtime;
  store(): { type: 'memory' | 'redis'; health: 'ok' | 'degraded' };
}

/** A breaker as /admin/breakers shows it, plus what the page needs besides. */
export interface BreakerView extends BreakerMetrics {
  name: string;
  /** Ms until an OPEN breaker lets probes through; 0 otherwise. */
  retry_after_ms: number;
}

export interface RouteView {
  name: string;
  upstream: string;
  /** 'none' (forwarded unlimited), 'enforced' or 'shadow' (counted, never rejected). */
  limits: 'none' | 'enforced' | 'shadow';
  /** Lifetime totals; rates are differences between two snapshots over `sampled_at`. */
  requests: number;
  allowed: number;
  limited: number;
  shadow_limited: number;
  errors_5xx: number;
}

export interface DashboardSnapshot {
  /** Wall-clock epoch ms when the totals were read. */
  sampled_at: number;
  policy: { version: number; loaded_at: string };
  store: { type: 'memory' | 'redis'; health: 'ok' | 'degraded'; errors_total: number };
  breakers: BreakerView[];
  /** Newest first, at most 20. */
  transitions: { name: string; from: StateName; to: StateName; reason: string; at: string }[];
  routes: RouteView[];
}

const TRANSITIONS_SHOWN = 20;

export async function dashboardSnapshot(s: DashboardSources): Promise<DashboardSnapshot> {
  const rt = s.runtime();
  const registry = await s.registry();
  const [decisions, requests, storeErrors] = await Promise.all([
    valuesOf(registry, 'rate_limit_requests_total'),
    valuesOf(registry, 'proxy_requests_total'),
    valuesOf(registry, 'rate_limit_store_errors_total'),
  ]);

  const routes = new Map<string, RouteView>();
  for (const r of rt.routes.values()) {
    routes.set(r.name, {
      name: r.name,
      upstream: r.upstream.name,
      limits: r.limits === null ? 'none' : r.limits.shadow ? 'shadow' : 'enforced',
      requests: 0,
      allowed: 0,
      limited: 0,
      shadow_limited: 0,
      errors_5xx: 0,
    });
  }
  for (const { labels, value } of decisions) {
    const view = routes.get(String(labels.endpoint));
    const decision = labels.decision;
    if (view && (decision === 'allowed' || decision === 'limited' || decision === 'shadow_limited')) {
      view[decision] += value;
    }
  }
  for (const { labels, value } of requests) {
    const view = routes.get(String(labels.route));
    if (!view) continue;
    view.requests += value;
    if (Number(labels.status) >= 500) view.errors_5xx += value;
  }

  const breakers: BreakerView[] = [];
  for (const [name, b] of s.breakers) {
    // getMetrics() first: reading the state is what turns an expired OPEN into HALF_OPEN.
    breakers.push({ name, ...b.getMetrics(), retry_after_ms: b.retryAfterMs() });
  }

  return {
    sampled_at: Date.now(),
    policy: { version: rt.version, loaded_at: rt.loadedAt.toISOString() },
    store: { ...s.store(), errors_total: storeErrors[0]?.value ?? 0 },
    breakers,
    transitions: s.transitions.recent(TRANSITIONS_SHOWN).map((c) => ({
      name: c.name,
      from: c.from,
      to: c.to,
      reason: c.reason,
      at: new Date(c.at).toISOString(),
    })),
    routes: [...routes.values()],
  };
}

/** A metric's samples; none when the registry does not hold it (an aggregate before any sample). */
async function valuesOf(registry: Registry, name: string): Promise<MetricValue<string>[]> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return [];
  return ((await metric.get()) as MetricObjectWithValues<MetricValue<string>>).values;
}
