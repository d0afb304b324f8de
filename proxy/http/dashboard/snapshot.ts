// What the dashboard shows, gathered in one JSON document: breakers with their recent transitions,
// per-route request and decision totals (the page turns consecutive totals into rates), store health
// and the policy in force. Totals come from the same counters /metrics exposes, so the page and
// Prometheus never disagree.
import type { BreakerMetrics, CircuitBreaker, StateName } from '../../../core/breaker/circuit-breaker.js';
import type { ProxyMetrics } from '../../observability/metrics.js';
import type { TransitionLog } from '../../observability/transition-log.js';
import type { Runtime } from '../runtime.js';

export interface DashboardSources {
  readonly breakers: Iterable<[string, CircuitBreaker]>;
  readonly transitions: TransitionLog;
  readonly metrics: ProxyMetrics;
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
  const [decisions, requests, storeErrors] = await Promise.all([
    s.metrics.rateLimitRequests.get(),
    s.metrics.requests.get(),
    s.metrics.storeErrors.get(),
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
  for (const { labels, value } of decisions.values) {
    const view = routes.get(String(labels.endpoint));
    const decision = labels.decision;
    if (view && (decision === 'allowed' || decision === 'limited' || decision === 'shadow_limited')) {
      view[decision] += value;
    }
  }
  for (const { labels, value } of requests.values) {
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
    store: { ...s.store(), errors_total: storeErrors.values[0]?.value ?? 0 },
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
