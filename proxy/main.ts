// Composition root of the proxy: builds the clock, stores, breakers, metrics and logger from a
// policy file, starts the data and admin listeners, and swaps policies on reload. Everything the
// hot path needs is compiled once per load (http/compile-runtime.ts); the store is built by
// ratelimit/build-store.ts.
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BreakerRegistry } from '../core/breaker/registry.js';
import { type Clock, systemClock } from '../core/clock.js';
import { FloodgateError } from '../core/errors.js';
import { createLogger, type Logger, logHasher } from '../core/logger.js';
import { loadPolicyFile, redactPolicy } from './config/load.js';
import type { Policy } from './config/schema.js';
import { sectionHash } from './config/section-hash.js';
import { type PolicyWatcher, watchPolicyFile } from './config/watch.js';
import { type AdminApi, createAdminServer, type ReloadResult } from './http/admin.js';
import { clientSettingsFromEnv } from './http/client-settings.js';
import { compileRuntime, type PoolEntry } from './http/compile-runtime.js';
import { Dashboard } from './http/dashboard/dashboard.js';
import { dashboardSnapshot } from './http/dashboard/snapshot.js';
import type { Runtime } from './http/runtime.js';
import { DataPlane } from './http/server.js';
import { ProxyMetrics } from './observability/metrics.js';
import { TransitionLog } from './observability/transition-log.js';
import { buildStore, type StoreBundle, storeHash } from './ratelimit/build-store.js';

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

/** How long a shutdown waits for in-flight requests. */
export const DRAIN_MS = 10_000;
/** The bound on each later step of a shutdown (closing listeners, pools, the store). */
const CLOSE_STEP_MS = 1_000;

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

  // FLOODGATE_REDIS_AUTOPIPELINING=1 turns ioredis auto-pipelining on (off by default; bench/ compares
  // both). A process setting, not policy: it changes how commands share writes, never what is decided.
  const storeOptions = {
    clock,
    metrics,
    logger,
    autoPipelining: process.env.FLOODGATE_REDIS_AUTOPIPELINING === '1',
  };
  let policy = first.policy;
  let version = 0;
  let store: StoreBundle = buildStore(policy, storeOptions);
  let pools: ReadonlyMap<string, PoolEntry> = new Map();
  await store.ready;
  let runtime = compile(policy);

  /** Compiles `p` into the next runtime on the current store; closes the pools it no longer uses. */
  function compile(p: Policy): Runtime {
    version++;
    const next = compileRuntime({
      policy: p,
      version,
      loadedAt: new Date(clock.now()),
      breakers,
      metrics,
      store: store.store,
      pools,
    });
    pools = next.pools;
    // close() lets requests already on a retired pool finish.
    for (const e of next.retired) void e.pool.close();
    return next.runtime;
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
      if (storeHash(next.policy) !== store.hash) {
        const fresh = buildStore(next.policy, storeOptions);
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
