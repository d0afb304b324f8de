// Composition root of a single-process proxy: builds the clock, store, breakers, metrics and logger
// from a policy file, serves the data plane and the control plane (admin, dashboard, reloads) from
// this one process. `workers: N` runs the same parts spread over processes instead (cluster/).
// Everything the hot path needs is compiled once per load (runtime-host.ts).
import type { AddressInfo } from 'node:net';
import { BreakerRegistry } from '../core/breaker/registry.js';
import { type Clock, systemClock } from '../core/clock.js';
import { FloodgateError } from '../core/errors.js';
import { createLogger, type Logger, logHasher } from '../core/logger.js';
import { loadPolicyFile } from './config/load.js';
import type { Policy } from './config/schema.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';
import type { ReloadResult } from './http/admin.js';
import { clientSettingsFromEnv } from './http/client-settings.js';
import { drainDataPlane } from './http/drain.js';
import { DataPlane } from './http/server.js';
import { listen } from './listen.js';
import { ProxyMetrics } from './observability/metrics.js';
import { observeBreakers } from './observability/observe-breakers.js';
import { TransitionLog } from './observability/transition-log.js';
import { buildStore } from './ratelimit/build-store.js';
import { RuntimeHost } from './runtime-host.js';
import { within } from './within.js';

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
  /** The policy already loaded from `configFile` (the CLI reads it to choose between one process and a cluster). */
  readonly policy?: Policy;
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
export const CLOSE_STEP_MS = 1_000;

/** Loads the policy file, or throws PolicyError with every problem in it. */
export async function loadPolicyOrThrow(
  configFile: string,
  env?: Readonly<Record<string, string | undefined>>,
): Promise<Policy> {
  const first = await loadPolicyFile(configFile, env);
  if (!first.ok) throw new PolicyError(first.errors);
  return first.policy;
}

/**
 * What builds a store for a policy: FLOODGATE_REDIS_AUTOPIPELINING=1 turns ioredis auto-pipelining on
 * (off by default; bench/ compares both). A process setting, not policy: it changes how commands share
 * writes, never what is decided.
 */
export function storeBuilder(o: {
  clock: Clock;
  metrics: ProxyMetrics;
  logger: Logger;
  onHealthChange?: () => void;
}) {
  const options = { ...o, autoPipelining: process.env.FLOODGATE_REDIS_AUTOPIPELINING === '1' };
  return (policy: Policy) => buildStore(policy, options);
}

/** Runs the proxy in this process, whatever `workers` says (the CLI runs a cluster for workers > 1). */
export async function startProxy(o: ProxyOptions): Promise<RunningProxy> {
  const env = o.env ?? process.env;
  const logger = o.logger ?? createLogger('floodgate-proxy');
  const clock = o.clock ?? systemClock;
  const metrics = new ProxyMetrics();
  const breakers = new BreakerRegistry({ clock });
  observeBreakers(breakers, metrics, logger);
  const transitions = new TransitionLog(breakers);

  const policy = o.policy ?? (await loadPolicyOrThrow(o.configFile, o.env));
  const host = await RuntimeHost.start(policy, {
    clock,
    metrics,
    breakers,
    buildStore: storeBuilder({ clock, metrics, logger }),
  });

  const dataPlane = new DataPlane({
    runtime: () => host.runtime,
    metrics,
    logger,
    clock,
    hashId: logHasher(env.FLOODGATE_LOG_SECRET),
    client: clientSettingsFromEnv(env),
  });
  let dataAddress: AddressInfo;
  let control: ControlPlane;
  try {
    dataAddress = await listen(dataPlane.server, policy.listen.host, policy.listen.port, 'listen');
    control = await startControlPlane({
      configFile: o.configFile,
      env: o.env,
      watch: o.watch !== false,
      watchDebounceMs: o.watchDebounceMs ?? 200,
      logger,
      clock,
      metrics,
      host,
      breakers,
      transitions,
      apply: (next) => host.apply(next),
      registry: () => Promise.resolve(metrics.registry),
      serving: () => true,
      degraded: () => host.store.degraded(),
    });
  } catch (err) {
    // A listener that cannot bind (ListenError) ends the start; what was opened for it is released.
    dataPlane.server.close();
    await within(host.destroyPools(), CLOSE_STEP_MS);
    await within(host.store.close(), CLOSE_STEP_MS);
    throw err;
  }
  metrics.reloads.inc({ result: 'success' });
  logger.info(
    { version: host.version, listen: dataAddress, admin: control.adminAddress, store: policy.store.type },
    'proxy started',
  );

  return {
    dataAddress,
    adminAddress: control.adminAddress,
    metrics,
    get version() {
      return host.version;
    },
    reload: control.reload,
    async close(drainMs = DRAIN_MS) {
      control.stopWatching();
      await drainDataPlane(dataPlane, drainMs, CLOSE_STEP_MS);
      await control.close(CLOSE_STEP_MS);
      await within(host.destroyPools(), CLOSE_STEP_MS);
      await within(host.store.close(), CLOSE_STEP_MS);
      logger.info('proxy stopped');
    },
  };
}
