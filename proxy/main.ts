// Composition root of the proxy: builds the clock, stores, breakers, metrics and logger from a
// policy file, starts the data and admin listeners, and swaps policies on reload. Everything the
// hot path needs is compiled here, once per load (see http/runtime.ts).

import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { CircuitBreaker } from '../core/breaker/circuit-breaker.js';
import { BreakerRegistry } from '../core/breaker/registry.js';
import { type Clock, systemClock } from '../core/clock.js';
import { FloodgateError } from '../core/errors.js';
import { createLogger, type Logger, logHasher } from '../core/logger.js';
import { loadPolicyFile, redactPolicy } from './config/load.js';
import type { Policy } from './config/schema.js';
import { sectionHash } from './config/section-hash.js';
import { type PolicyWatcher, watchPolicyFile } from './config/watch.js';
import { type AdminApi, createAdminServer, type ReloadResult } from './http/admin.js';
import { canonicalIp, compileTrustedProxies } from './http/client-ip.js';
import { clientSettingsFromEnv } from './http/client-settings.js';
import { Dashboard } from './http/dashboard/dashboard.js';
import { dashboardSnapshot } from './http/dashboard/snapshot.js';
import { headerIdentity, ipIdentity } from './http/identity.js';
import { compileRoutes } from './http/router.js';
import { keyExtractor, type RouteRuntime, type Runtime, type UpstreamRuntime } from './http/runtime.js';
import { DataPlane } from './http/server.js';
import { ProxyMetrics } from './observability/metrics.js';
import { TransitionLog } from './observability/transition-log.js';
import { GuardedStore } from './ratelimit/guarded-store.js';
import { rateLimitPolicy } from './ratelimit/headers.js';
import { RateLimiter } from './ratelimit/limiter.js';
import { MemoryRateLimitStore } from './ratelimit/memory-store.js';
import { connectRedis } from './ratelimit/redis-client.js';
import { RedisRateLimitStore } from './ratelimit/redis-store.js';
import type { RateLimitStore } from './ratelimit/store.js';

/** The policy file does not load; `errors` holds one line per problem. */
export class PolicyError extends FloodgateError<'invalid_policy'> {
  constructor(readonly errors: readonly string[]) {
    super('PolicyError', 'invalid_policy', errors.join('\n'));
  }
}

export interface ProxyOptions {
  readonly configFile: string;
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Reload when the file changes (default true). */
  readonly watch?: boolean;
  readonly watchDebounceMs?: number;
}

export interface RunningProxy {
  readonly dataAddress: AddressInfo;
  readonly adminAddress: AddressInfo;
  readonly metrics: ProxyMetrics;
  readonly version: number;
  reload(): Promise<ReloadResult>;
  /** Stops accepting, drains in-flight requests for up to `drainMs`, then releases everything. */
  close(drainMs?: number): Promise<void>;
}

/** A store and what it was built from, so a reload that leaves `store:` alone keeps its counters. */
interface StoreBundle {
  readonly hash: string;
  readonly store: RateLimitStore;
  readonly degraded: () => boolean;
  /**
   * Settles once the store has either connected or failed its first attempt (bounded), so the first
   * requests neither race the connection (commands fail fast while disconnected) nor wait on a dead one.
   */
  readonly ready: Promise<void>;
  /** Closes the store and whatever connection it was built with. */
  close(): Promise<void>;
}

interface PoolEntry {
  readonly hash: string;
  readonly pool: Pool;
}

/** How long a shutdown waits for in-flight requests. */
export const DRAIN_MS = 10_000;
/** The bound on each later step of a shutdown (closing listeners, pools, the store). */
const CLOSE_STEP_MS = 1_000;

const STORE_BREAKER = { failureThreshold: 3, successThreshold: 1, timeoutMs: 1_000, halfOpenMaxCalls: 1 };
/** Longest a start or reload waits for a new Redis connection before serving with it anyway. */
const STORE_CONNECT_WAIT_MS = 5_000;

function firstConnection(redis: ReturnType<typeof connectRedis>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      redis.off('ready', done);
      redis.off('error', done);
      resolve();
    };
    const timer = setTimeout(done, STORE_CONNECT_WAIT_MS);
    redis.once('ready', done);
    redis.once('error', done);
  });
}

function buildStore(policy: Policy, clock: Clock, metrics: ProxyMetrics, logger: Logger): StoreBundle {
  const s = policy.store;
  const hash = sectionHash(s);
  // Label handles made once: under a flood of new identities this runs on every request.
  const evicted = [false, true].map((l) => metrics.storeEvictions.labels({ limited: String(l) }));
  const memory = (): MemoryRateLimitStore =>
    new MemoryRateLimitStore({ clock, maxKeys: s.maxKeys, onEvict: (l) => evicted[l ? 1 : 0]!.inc() });
  if (s.type === 'memory') {
    const store = memory();
    return { hash, store, degraded: () => false, ready: Promise.resolve(), close: () => store.close() };
  }
  // FLOODGATE_REDIS_AUTOPIPELINING=1 turns ioredis auto-pipelining on (off by default; bench/ compares
  // both). A process setting, not policy: it changes how commands share writes, never what is decided.
  const redis = connectRedis(s.url, {
    commandTimeoutMs: s.timeoutMs,
    autoPipelining: process.env.FLOODGATE_REDIS_AUTOPIPELINING === '1',
    cluster: s.cluster,
  });
  const breaker = new CircuitBreaker({ name: 'rate-limit-store', clock, ...STORE_BREAKER });
  breaker.on('open', () =>
    logger.error({ store: 'redis' }, 'rate limit store unavailable; on_error=' + s.onError),
  );
  breaker.on('close', () => logger.info({ store: 'redis' }, 'rate limit store recovered'));
  const store = new GuardedStore({
    // The client's commandTimeout already bounds each call at store.timeout; a second timer here
    // would only cost the hot path a promise and a timer per request. Except on a cluster: its client
    // queues commands while it (re)discovers the nodes, and that queue knows no commandTimeout.
    primary: new RedisRateLimitStore({
      redis,
      prefix: s.prefix,
      timeoutMs: s.cluster ? s.timeoutMs : undefined,
    }),
    breaker,
    fallback: s.onError === 'local' ? memory() : null,
    observe: (seconds, err) => {
      metrics.storeDuration.observe(seconds);
      if (err !== undefined) metrics.storeErrors.inc();
    },
  });
  return {
    hash,
    store,
    degraded: () => !store.healthy,
    ready: firstConnection(redis),
    async close() {
      await store.close();
      // The store does not own its client. QUIT lets commands already sent finish (a reload retires a
      // store that requests may still be using); a Redis that does not answer gets no longer than a call.
      await Promise.race([
        redis.quit().catch(() => undefined),
        new Promise((r) => setTimeout(r, s.timeoutMs).unref()),
      ]);
      redis.disconnect();
    },
  };
}

function newPool(u: Policy['upstreams'][string]): Pool {
  return new Pool(u.url, {
    connections: 256,
    keepAliveTimeout: 30_000,
    connect: { timeout: u.timeouts.connectMs },
  });
}

async function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  server.listen(port, host);
  await once(server, 'listening');
  return server.address() as AddressInfo;
}

export async function startProxy(o: ProxyOptions): Promise<RunningProxy> {
  const env = o.env ?? process.env;
  const client = clientSettingsFromEnv(env);
  const logger = o.logger ?? createLogger('floodgate-proxy');
  const clock = o.clock ?? systemClock;
  const metrics = new ProxyMetrics();
  const breakers = new BreakerRegistry({ clock });
  observeBreakers(breakers, metrics, logger);
  const transitions = new TransitionLog(breakers);

  const first = await loadPolicyFile(o.configFile, o.env);
  if (!first.ok) throw new PolicyError(first.errors);

  let policy = first.policy;
  let version = 0;
  let store: StoreBundle = buildStore(policy, clock, metrics, logger);
  let pools = new Map<string, PoolEntry>();
  await store.ready;
  let runtime = compile(policy);

  /** Compiles `p` into a runtime, reusing the store, pools and breakers it leaves unchanged. */
  function compile(p: Policy): Runtime {
    const live = breakers.sync(
      Object.fromEntries(
        Object.values(p.upstreams).map((u) => [
          u.name,
          { ...u.breaker, failureRate: u.breaker.failureRate ?? undefined },
        ]),
      ),
    );
    const nextPools = new Map<string, PoolEntry>();
    const upstreams = new Map<string, UpstreamRuntime>();
    for (const u of Object.values(p.upstreams)) {
      const hash = sectionHash([u.url, u.timeouts]);
      const prev = pools.get(u.name);
      const entry = prev && prev.hash === hash ? prev : { hash, pool: newPool(u) };
      nextPools.set(u.name, entry);
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
    const kept = new Set(nextPools.values());
    const retired = [...pools.values()].filter((e) => !kept.has(e));
    pools = nextPools;
    // close() lets requests already on a retired pool finish.
    for (const e of retired) void e.pool.close();

    const routes = new Map<string, RouteRuntime>();
    const table = p.routes.map((r) => {
      const upstream = upstreams.get(r.upstream)!;
      const limits = r.limits;
      const rt: RouteRuntime = {
        name: r.name,
        upstream,
        duration: metrics.durationHandle(r.name, upstream.name),
        maxBody: r.maxBodyBytes ?? Number.POSITIVE_INFINITY,
        limits: limits && {
          // The scope carries a hash of the limits: an unchanged route keeps its counters across a
          // reload, a changed one starts afresh instead of misreading state kept for other windows.
          limiter: new RateLimiter({
            store: store.store,
            windows: limits.windows,
            algorithm: limits.algorithm,
            scope: `${r.name}:${sectionHash(limits).slice(0, 8)}`,
          }),
          keyHeader: limits.key.type === 'header' ? limits.key.name : null,
          keyOf: keyExtractor(limits.key.type === 'header' ? limits.key.name : null),
          adminKey:
            limits.key.type === 'header'
              ? headerIdentity
              : (id: string) => ipIdentity(canonicalIp(id), p.clientIp.ipv6Prefix),
          shadow: limits.shadow,
          policyHeader: rateLimitPolicy(limits.windows),
        },
      };
      routes.set(r.name, rt);
      return { match: r.match, rt };
    });
    const router = compileRoutes(table);
    version++;
    return {
      version,
      loadedAt: new Date(clock.now()),
      match: (method, path) => router.match(method, path)?.rt,
      routes,
      upstreams,
      clientIp: compileTrustedProxies(p.clientIp.trustedProxies.map((c) => c.cidr)),
      ipv6Prefix: p.clientIp.ipv6Prefix,
      storeDenies: p.store.onError === 'deny',
    };
  }

  let reloading: Promise<ReloadResult> = Promise.resolve({ ok: true, version });
  const reload = (): Promise<ReloadResult> => {
    reloading = reloading.then(async (): Promise<ReloadResult> => {
      const next = await loadPolicyFile(o.configFile, o.env);
      if (!next.ok) {
        metrics.reloads.inc({ result: 'failure' });
        logger.error(
          { file: o.configFile, errors: next.errors },
          'config reload rejected; the running policy stays',
        );
        return { ok: false, errors: [...next.errors] };
      }
      const listenChanged =
        sectionHash([next.policy.listen, next.policy.admin.listen]) !==
        sectionHash([policy.listen, policy.admin.listen]);
      if (listenChanged) logger.warn('listen addresses change only on restart; the other changes apply now');
      const oldStore = store;
      if (sectionHash(next.policy.store) !== store.hash) {
        const fresh = buildStore(next.policy, clock, metrics, logger);
        await fresh.ready;
        store = fresh;
      }
      runtime = compile(next.policy);
      policy = next.policy;
      if (oldStore !== store) void oldStore.close();
      metrics.reloads.inc({ result: 'success' });
      logger.info({ version: runtime.version, file: o.configFile }, 'config reloaded');
      return { ok: true, version: runtime.version };
    });
    return reloading;
  };

  const dataPlane = new DataPlane({
    runtime: () => runtime,
    metrics,
    logger,
    clock,
    hashId: logHasher(env.FLOODGATE_LOG_SECRET),
    client,
  });

  const dashboard = new Dashboard({
    token: () => policy.admin.token,
    clock,
    transitions,
    snapshot: () =>
      dashboardSnapshot({
        breakers,
        transitions,
        metrics,
        runtime: () => runtime,
        store: () => ({ type: policy.store.type, health: store.degraded() ? 'degraded' : 'ok' }),
      }),
    onError: (err) => logger.warn({ err }, 'dashboard snapshot failed'),
  });

  const admin: AdminApi = {
    token: () => policy.admin.token,
    clock,
    breakers: () => breakers.metrics(),
    resetBreaker: (name) => breakers.reset(name),
    async limits(routeName, key) {
      const route = runtime.routes.get(routeName);
      if (!route) return null;
      if (!route.limits) return { route: routeName, key, windows: [] };
      const info = await route.limits.limiter.getLimitInfo(route.limits.adminKey(key));
      return { route: routeName, key, windows: info.windows };
    },
    config: () => ({
      version: runtime.version,
      loaded_at: runtime.loadedAt.toISOString(),
      policy: redactPolicy(policy),
    }),
    reload,
    readiness: () => ({ ready: true, store: store.degraded() ? 'degraded' : 'ok' }),
    async metrics() {
      return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
    },
    dashboard: dashboard.page,
    events: dashboard.events,
  };
  const adminServer = createAdminServer(admin, (err) => logger.error({ err }, 'admin request failed'));

  const dataAddress = await listen(dataPlane.server, policy.listen.host, policy.listen.port);
  const adminAddress = await listen(adminServer, policy.admin.listen.host, policy.admin.listen.port);
  metrics.reloads.inc({ result: 'success' });
  logger.info(
    { version: runtime.version, listen: dataAddress, admin: adminAddress, store: policy.store.type },
    'proxy started',
  );

  let watcher: PolicyWatcher | null = null;
  if (o.watch !== false) {
    watcher = watchPolicyFile(o.configFile, () => reload().then(() => undefined), {
      debounceMs: o.watchDebounceMs ?? 200,
      onError: (err) => logger.warn({ err }, 'policy watcher error'),
    });
  }

  return {
    dataAddress,
    adminAddress,
    metrics,
    get version() {
      return runtime.version;
    },
    reload,
    async close(drainMs = DRAIN_MS) {
      watcher?.close();
      const closed = new Promise<void>((r) => dataPlane.server.close(() => r()));
      dataPlane.server.closeIdleConnections();
      const deadline = Date.now() + drainMs;
      while (dataPlane.pending > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 25));
        dataPlane.server.closeIdleConnections();
      }
      dataPlane.server.closeAllConnections();
      dataPlane.closeTunnels();
      // Past the drain, every step gets a short bound of its own: a socket or peer that does not
      // answer must not keep the process from exiting.
      await within(closed, CLOSE_STEP_MS);
      dashboard.close();
      adminServer.closeAllConnections();
      await within(new Promise<void>((r) => adminServer.close(() => r())), CLOSE_STEP_MS);
      await within(Promise.all([...pools.values()].map((e) => e.pool.destroy())), CLOSE_STEP_MS);
      await within(store.close(), CLOSE_STEP_MS);
      logger.info('proxy stopped');
    },
  };
}

/** Resolves when `p` settles or `ms` have passed, whichever comes first. */
function within(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    p.then(
      () => resolve(),
      () => resolve(),
    ).finally(() => clearTimeout(timer));
  });
}

/** Breaker transitions feed metrics and log lines: a warning with the counts on OPEN, info otherwise. */
function observeBreakers(registry: BreakerRegistry, metrics: ProxyMetrics, logger: Logger): void {
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
