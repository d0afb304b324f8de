// The proxy's control plane: the admin listener (health, metrics, the admin API, the dashboard), the
// policy watcher, and reloads, one at a time. A single proxy and a cluster's primary both run it; what
// a reload applies, and which metrics are shown, is theirs to say (`apply`, `registry`).
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { BreakerRegistry } from '../core/breaker/registry.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { loadPolicyFile, redactPolicy } from './config/load.js';
import type { Policy } from './config/schema.js';
import { sectionHash } from './config/section-hash.js';
import { type PolicyWatcher, watchPolicyFile } from './config/watch.js';
import { type AdminApi, createAdminServer, type ReloadResult } from './http/admin.js';
import { Dashboard } from './http/dashboard/dashboard.js';
import { dashboardSnapshot } from './http/dashboard/snapshot.js';
import { listen } from './listen.js';
import type { ProxyMetrics } from './observability/metrics.js';
import type { TransitionLog } from './observability/transition-log.js';
import type { RuntimeHost } from './runtime-host.js';
import { within } from './within.js';

export interface ControlPlaneOptions {
  readonly configFile: string;
  readonly env: Readonly<Record<string, string | undefined>> | undefined;
  readonly watch: boolean;
  readonly watchDebounceMs: number;
  readonly logger: Logger;
  readonly clock: Clock;
  /** This process's metrics: reloads are counted here. */
  readonly metrics: ProxyMetrics;
  readonly host: RuntimeHost;
  readonly breakers: BreakerRegistry;
  readonly transitions: TransitionLog;
  /** Puts a valid policy in force everywhere it must be (the host; in a cluster, every worker too). */
  apply(policy: Policy): Promise<void>;
  /** What /metrics and the dashboard show: this process's registry, or a cluster's aggregate. */
  registry(): Promise<Registry>;
  /** Whether the data plane answers (a cluster: at least one worker listens). */
  serving(): boolean;
  /** Whether the shared store is failing anywhere it is used (a cluster: in any worker). */
  degraded(): boolean;
  /** Called after an admin reset of a breaker (a cluster tells its workers the new state). */
  onBreakerReset?(name: string): void;
}

export interface ControlPlane {
  readonly adminAddress: AddressInfo;
  reload(): Promise<ReloadResult>;
  /** The first step of a shutdown: no reload starts from a file change any more. */
  stopWatching(): void;
  /** The last: the dashboard's streams and the admin listener. */
  close(stepMs: number): Promise<void>;
}

export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const { host, logger, metrics, breakers } = o;

  let reloading: Promise<ReloadResult> = Promise.resolve({ ok: true, version: host.version });
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
      const old = host.policy;
      if (
        sectionHash([next.policy.listen, next.policy.admin.listen, next.policy.workers]) !==
        sectionHash([old.listen, old.admin.listen, old.workers])
      ) {
        logger.warn('listen addresses and workers change only on restart; the other changes apply now');
      }
      await o.apply(next.policy);
      metrics.reloads.inc({ result: 'success' });
      logger.info({ version: host.version, file: o.configFile }, 'config reloaded');
      return { ok: true, version: host.version };
    });
    return reloading;
  };

  const storeHealth = (): 'ok' | 'degraded' => (o.degraded() ? 'degraded' : 'ok');
  const dashboard = new Dashboard({
    token: () => host.policy.admin.token,
    clock: o.clock,
    transitions: o.transitions,
    snapshot: () =>
      dashboardSnapshot({
        breakers,
        transitions: o.transitions,
        registry: o.registry,
        runtime: () => host.runtime,
        store: () => ({ type: host.policy.store.type, health: storeHealth() }),
      }),
    onError: (err) => logger.warn({ err }, 'dashboard snapshot failed'),
  });

  const admin: AdminApi = {
    token: () => host.policy.admin.token,
    clock: o.clock,
    breakers: () => breakers.metrics(),
    resetBreaker(name) {
      if (!breakers.reset(name)) return false;
      o.onBreakerReset?.(name);
      return true;
    },
    async limits(routeName, keys, plan) {
      const route = host.runtime.routes.get(routeName);
      if (!route) return { ok: false, status: 404, body: { error: 'Unknown route', route: routeName } };
      const key = keys.length === 1 ? keys[0]! : [...keys];
      if (!route.limits) return { ok: true, view: { route: routeName, key, plan: null, windows: [] } };
      const target = route.limits.lookup(keys, plan);
      if ('error' in target)
        return { ok: false, status: 400, body: { error: target.error, route: routeName } };
      const info = await target.plan.limiter.getLimitInfo(target.id);
      return { ok: true, view: { route: routeName, key, plan: target.plan.value, windows: info.windows } };
    },
    config: () => ({
      version: host.version,
      loaded_at: host.runtime.loadedAt.toISOString(),
      policy: redactPolicy(host.policy),
    }),
    reload,
    readiness: () => ({ ready: o.serving(), store: storeHealth() }),
    async metrics() {
      const registry = await o.registry();
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    dashboard: dashboard.page,
    events: dashboard.events,
  };
  const adminServer = createAdminServer(admin, (err) => logger.error({ err }, 'admin request failed'));
  const adminAddress = await listen(
    adminServer,
    host.policy.admin.listen.host,
    host.policy.admin.listen.port,
    'admin.listen',
  );

  let watcher: PolicyWatcher | null = null;
  if (o.watch) {
    watcher = watchPolicyFile(o.configFile, () => reload().then(() => undefined), {
      debounceMs: o.watchDebounceMs,
      onError: (err) => logger.warn({ err }, 'policy watcher error'),
    });
  }

  return {
    adminAddress,
    reload,
    stopWatching: () => watcher?.close(),
    async close(stepMs) {
      watcher?.close();
      dashboard.close();
      adminServer.closeAllConnections();
      await within(new Promise<void>((r) => adminServer.close(() => r())), stepMs);
    },
  };
}
