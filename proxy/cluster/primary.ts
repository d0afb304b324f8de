// A cluster's primary: `workers: N` as one proxy to the outside. It forks N workers that share the data
// port (node:cluster), and keeps for all of them what must be one: the policy and its reloads, the
// breakers, the memory store's counters (hub.ts), the admin listener and dashboard, and /metrics summed
// over every process. A worker that dies is replaced; SIGTERM drains them all.

import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { BreakerRegistry } from '../../core/breaker/registry.js';
import { type Clock, systemClock } from '../../core/clock.js';
import { FloodgateError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Policy } from '../config/schema.js';
import { startControlPlane } from '../control-plane.js';
import type { ReloadResult } from '../http/admin.js';
import { CLOSE_STEP_MS, DRAIN_MS, storeBuilder } from '../main.js';
import { ProxyMetrics } from '../observability/metrics.js';
import { observeBreakers } from '../observability/observe-breakers.js';
import { TransitionLog } from '../observability/transition-log.js';
import { RuntimeHost } from '../runtime-host.js';
import { within } from '../within.js';
import { breakerState, ClusterHub } from './hub.js';
import type { ToPrimary, ToWorker } from './messages.js';

/** A worker could not start serving (its listener failed); the cluster does not start. */
export class WorkerStartError extends FloodgateError<'worker_start_failed'> {
  constructor(
    readonly errno: string,
    message: string,
  ) {
    super('WorkerStartError', 'worker_start_failed', message);
  }
}

export interface ClusterOptions {
  readonly configFile: string;
  readonly policy: Policy;
  readonly workers: number;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface RunningCluster {
  readonly adminAddress: AddressInfo;
  reload(): Promise<ReloadResult>;
  close(drainMs?: number): Promise<void>;
}

/** How long a reload waits for each worker to confirm the new policy. */
const APPLY_WAIT_MS = 5_000;
/** How long a scrape waits for a worker's metrics before showing the others'. */
const SCRAPE_WAIT_MS = 2_000;
/** A worker that lived this long before dying is replaced at once; one that dies sooner, with backoff. */
const HEALTHY_UPTIME_MS = 10_000;
const MAX_RESTART_DELAY_MS = 10_000;

interface Member {
  readonly worker: Worker;
  readonly startedAt: number;
  listening: boolean;
  version: number;
  /** Its Redis store is failing (it decides by store.on_error meanwhile). */
  degraded: boolean;
}

export async function startCluster(o: ClusterOptions): Promise<RunningCluster> {
  const { logger } = o;
  const clock = o.clock ?? systemClock;
  const metrics = new ProxyMetrics();
  const breakers = new BreakerRegistry({ clock });
  observeBreakers(breakers, metrics, logger);
  const transitions = new TransitionLog(breakers);
  const members = new Map<number, Member>();

  const broadcast = (m: ToWorker): void => {
    for (const { worker } of members.values()) if (worker.isConnected()) worker.send(m);
  };
  // A breaker's every change reaches every worker; the listener goes with the breaker when a reload
  // retires it (observe-breakers.ts removes them all).
  breakers.on('added', (b) =>
    b.on('stateChange', () => broadcast({ t: 'breakers', states: [breakerState(b, clock)] })),
  );

  const host = await RuntimeHost.start(o.policy, {
    clock,
    metrics,
    breakers,
    buildStore: storeBuilder({ clock, metrics, logger }),
  });
  const hub = new ClusterHub({ breakers, store: () => host.store.store, clock });
  const policyMessage = (): ToWorker => ({
    t: 'policy',
    policy: host.policy,
    version: host.version,
    breakers: hub.states(),
  });

  // Replies the primary waits for, by what they answer.
  const appliedWaiters = new Set<() => void>();
  const scrapes = new Map<number, (m: Extract<ToPrimary, { t: 'metrics' }>['metrics']) => void>();
  let nextScrape = 0;

  let stopping = false;
  let started = false;
  let failStart: (err: Error) => void = () => undefined;
  let restartDelay = 0;
  // One log key for every worker: the same identity hashes alike in every worker's log lines.
  const env = { FLOODGATE_LOG_SECRET: process.env.FLOODGATE_LOG_SECRET || randomBytes(32).toString('hex') };

  // Each worker accepts from the shared socket itself (the kernel picks which), rather than the
  // primary accepting and handing connections over in turn: a connection handed to a worker that dies
  // before taking it is neither closed nor handed to another by node:cluster, and its client hangs.
  // NODE_CLUSTER_SCHED_POLICY=rr still chooses round robin.
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;

  function fork(): void {
    const worker = cluster.fork(env);
    const member: Member = { worker, startedAt: clock.now(), listening: false, version: 0, degraded: false };
    members.set(worker.id, member);
    worker.on('message', (m: ToPrimary) => {
      switch (m.t) {
        case 'batch':
          if (worker.isConnected()) worker.send(hub.serve(worker.id, m));
          return;
        case 'hello':
          worker.send(policyMessage());
          return;
        case 'applied':
          member.version = m.version;
          for (const w of appliedWaiters) w();
          return;
        case 'metrics':
          scrapes.get(m.id)?.(m.metrics);
          return;
        case 'store':
          member.degraded = m.degraded;
          return;
        case 'failed':
          logger.error({ worker: worker.id, code: m.code, err: m.message }, 'worker could not listen');
          if (!started) failStart(new WorkerStartError(m.code, m.message));
          return;
      }
    });
    worker.on('listening', () => {
      member.listening = true;
    });
    worker.on('exit', (code, signal) => {
      members.delete(worker.id);
      hub.forget(worker.id);
      for (const w of appliedWaiters) w();
      if (stopping) return;
      if (!started) {
        failStart(
          new WorkerStartError('exit', `a worker exited while starting (code ${code}, signal ${signal})`),
        );
        return;
      }
      const lived = clock.now() - member.startedAt;
      restartDelay = lived >= HEALTHY_UPTIME_MS ? 0 : Math.min(MAX_RESTART_DELAY_MS, restartDelay * 2 || 100);
      logger.error(
        { worker: worker.id, worker_pid: worker.process.pid, code, signal, restart_in_ms: restartDelay },
        'worker exited; starting another',
      );
      setTimeout(() => {
        if (!stopping) fork();
      }, restartDelay).unref();
    });
  }

  /** Sends the policy in force to every worker; resolves when all have it (or after APPLY_WAIT_MS). */
  async function spreadPolicy(): Promise<void> {
    const version = host.version;
    broadcast(policyMessage());
    const done = () => [...members.values()].every((m) => m.version >= version || !m.worker.isConnected());
    if (done()) return;
    await within(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (!done()) return;
          appliedWaiters.delete(check);
          resolve();
        };
        appliedWaiters.add(check);
      }),
      APPLY_WAIT_MS,
    );
  }

  function scrape(worker: Worker): Promise<object[] | null> {
    const id = ++nextScrape;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        scrapes.delete(id);
        resolve(null);
      }, SCRAPE_WAIT_MS);
      scrapes.set(id, (json) => {
        clearTimeout(timer);
        scrapes.delete(id);
        resolve(json);
      });
      worker.send({ t: 'scrape', id } satisfies ToWorker);
    });
  }

  /** This process's metrics and every worker's, summed (prom-client's cluster aggregation). */
  async function registry(): Promise<Registry> {
    const own = await metrics.registry.getMetricsAsJSON();
    const workers = await Promise.all(
      [...members.values()].filter((m) => m.worker.isConnected()).map((m) => scrape(m.worker)),
    );
    return AggregatorRegistry.aggregate([own, ...workers.filter((w) => w !== null)]);
  }

  // Every worker listening, or the first that could not.
  const listening = new Promise<{ address: string; port: number }>((resolve, reject) => {
    failStart = reject;
    cluster.on('listening', (_worker, a) => {
      if ([...members.values()].every((m) => m.listening)) resolve({ address: a.address, port: a.port });
    });
  });
  for (let i = 0; i < o.workers; i++) fork();
  let dataAddress: { address: string; port: number };
  try {
    dataAddress = await listening;
  } catch (err) {
    stopping = true;
    for (const { worker } of members.values()) worker.process.kill('SIGKILL');
    await within(host.store.close(), CLOSE_STEP_MS);
    throw err;
  }
  started = true;

  const control = await startControlPlane({
    configFile: o.configFile,
    env: o.env,
    watch: true,
    watchDebounceMs: 200,
    logger,
    clock,
    metrics,
    host,
    breakers,
    transitions,
    async apply(next) {
      await host.apply(next);
      await spreadPolicy();
    },
    registry,
    serving: () => [...members.values()].some((m) => m.listening),
    degraded: () => host.store.degraded() || [...members.values()].some((m) => m.degraded),
    onBreakerReset: () => broadcast({ t: 'breakers', states: hub.states() }),
  });
  metrics.reloads.inc({ result: 'success' });
  logger.info(
    {
      version: host.version,
      listen: dataAddress,
      admin: control.adminAddress,
      store: o.policy.store.type,
      workers: o.workers,
    },
    'proxy started',
  );

  return {
    adminAddress: control.adminAddress,
    reload: control.reload,
    async close(drainMs = DRAIN_MS) {
      stopping = true;
      control.stopWatching();
      const exits = [...members.values()].map(
        ({ worker }) => new Promise<void>((resolve) => worker.once('exit', () => resolve())),
      );
      broadcast({ t: 'drain', drainMs });
      await within(Promise.all(exits), drainMs + 3 * CLOSE_STEP_MS);
      for (const { worker } of members.values()) worker.process.kill('SIGKILL');
      await control.close(CLOSE_STEP_MS);
      await within(host.destroyPools(), CLOSE_STEP_MS);
      await within(host.store.close(), CLOSE_STEP_MS);
      logger.info('proxy stopped');
    },
  };
}
