// Compiles a policy into the Runtime the data plane reads (runtime.ts): connection pools, upstream
// runtimes with their breakers, route runtimes with their limiters, and the route table. Runs once
// per load; whatever the new policy leaves unchanged (pools, breakers, limiter counters) carries over.
import { Pool } from 'undici';
import type { BreakerSource } from '../../core/breaker/registry.js';
import type { Policy, Upstream } from '../config/schema.js';
import { sectionHash } from '../config/section-hash.js';
import type { ProxyMetrics } from '../observability/metrics.js';
import type { RateLimitStore } from '../ratelimit/store.js';
import { compileTrustedProxies } from './client-ip.js';
import { compileLimits } from './compile-limits.js';
import { BASE_SINGLETONS, singletonHeaders } from './request-headers.js';
import { compileRoutes } from './router.js';
import type { RouteRuntime, Runtime, UpstreamRuntime } from './runtime.js';

export { limiterScope } from './compile-limits.js';

/** A pool and the hash of the settings it was made with (see poolHash). */
export interface PoolEntry {
  readonly hash: string;
  readonly pool: Pool;
}

/** What a pool depends on: an upstream whose url and timeouts stay the same keeps its connections. */
export function poolHash(u: Upstream): string {
  return sectionHash([u.url, u.timeouts]);
}

function newPool(u: Upstream): Pool {
  return new Pool(u.url, {
    connections: 256,
    keepAliveTimeout: 30_000,
    connect: { timeout: u.timeouts.connectMs },
  });
}

export interface CompileInputs {
  readonly policy: Policy;
  readonly version: number;
  readonly loadedAt: Date;
  /** Synced to the policy's upstreams: unchanged breakers keep their state. */
  readonly breakers: BreakerSource;
  readonly metrics: ProxyMetrics;
  readonly store: RateLimitStore;
  /** The pools of the runtime this one replaces, by upstream name; empty at start. */
  readonly pools: ReadonlyMap<string, PoolEntry>;
}

export interface CompiledRuntime {
  readonly runtime: Runtime;
  /** The pools the runtime uses, to pass to the next compile and to destroy at shutdown. */
  readonly pools: Map<string, PoolEntry>;
  /** Previous pools the runtime no longer uses; the caller closes them. */
  readonly retired: readonly PoolEntry[];
}

/** Compiles `policy` into a runtime, reusing the pools and breakers it leaves unchanged. */
export function compileRuntime(i: CompileInputs): CompiledRuntime {
  const p = i.policy;
  const live = i.breakers.sync(
    Object.fromEntries(
      Object.values(p.upstreams).map((u) => [
        u.name,
        { ...u.breaker, failureRate: u.breaker.failureRate ?? undefined },
      ]),
    ),
  );
  const pools = new Map<string, PoolEntry>();
  const upstreams = new Map<string, UpstreamRuntime>();
  for (const u of Object.values(p.upstreams)) {
    const hash = poolHash(u);
    const prev = i.pools.get(u.name);
    const entry = prev && prev.hash === hash ? prev : { hash, pool: newPool(u) };
    pools.set(u.name, entry);
    upstreams.set(u.name, {
      name: u.name,
      url: u.url,
      breaker: live.get(u.name)!,
      target: {
        name: u.name,
        pool: entry.pool,
        responseTimeoutMs: u.timeouts.responseMs,
        idleTimeoutMs: u.timeouts.idleMs,
        failureStatuses: new Set(u.breaker.failureStatuses),
      },
    });
  }
  const kept = new Set(pools.values());
  const retired = [...i.pools.values()].filter((e) => !kept.has(e));

  const routes = new Map<string, RouteRuntime>();
  const table = p.routes.map((r) => {
    const upstream = upstreams.get(r.upstream)!;
    const limits = r.limits && compileLimits(r, r.limits, p, i.store);
    const rt: RouteRuntime = {
      name: r.name,
      upstream,
      duration: i.metrics.durationHandle(r.name, upstream.name),
      maxBody: r.maxBodyBytes ?? Number.POSITIVE_INFINITY,
      singletons: limits && limits.headers.length > 0 ? singletonHeaders(limits.headers) : BASE_SINGLETONS,
      limits,
    };
    routes.set(r.name, rt);
    return { match: r.match, rt };
  });
  const router = compileRoutes(table);
  const runtime: Runtime = {
    version: i.version,
    loadedAt: i.loadedAt,
    match: (method, path, host, headers) => router.match(method, path, host, headers)?.rt,
    conditionHeaders: router.conditionHeaders.size > 0 ? router.conditionHeaders : null,
    routes,
    upstreams,
    clientIp: compileTrustedProxies(p.clientIp.trustedProxies.map((c) => c.cidr)),
    ipv6Prefix: p.clientIp.ipv6Prefix,
    storeDenies: p.store.onError === 'deny',
  };
  return { runtime, pools, retired };
}
