// A cluster worker: serves the data plane on the listener node:cluster shares, with the policy, the
// breakers' state and (with the memory store) the counters of its primary. It has no admin listener and
// reads no policy file: the primary sends what is in force, and tells it when to stop.
import type { AddressInfo } from 'node:net';
import { type Clock, systemClock } from '../../core/clock.js';
import { type Logger, logHasher } from '../../core/logger.js';
import type { Policy } from '../config/schema.js';
import { clientSettingsFromEnv } from '../http/client-settings.js';
import { drainDataPlane } from '../http/drain.js';
import { DataPlane } from '../http/server.js';
import { CLOSE_STEP_MS, DRAIN_MS, storeBuilder } from '../main.js';
import { ProxyMetrics } from '../observability/metrics.js';
import { type StoreBundle, storeHash } from '../ratelimit/build-store.js';
import { RuntimeHost } from '../runtime-host.js';
import { within } from '../within.js';
import { BreakerMirrors } from './breaker-mirrors.js';
import type { ToPrimary, ToWorker } from './messages.js';
import { PrimaryLink } from './primary-link.js';
import { RemoteStore } from './remote-store.js';

/** How long a worker whose primary is gone keeps draining before it exits. */
const ORPHAN_DRAIN_MS = 2_000;

/** The store bundle of a worker whose policy keeps its counters in memory: the primary's. */
function remoteBundle(policy: Policy, link: PrimaryLink): StoreBundle {
  return {
    hash: storeHash(policy),
    store: new RemoteStore(link),
    degraded: () => false,
    ready: Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

export function runWorker(logger: Logger, clock: Clock = systemClock): void {
  const send = (m: ToPrimary): void => {
    process.send!(m);
  };
  const env = process.env;
  const metrics = new ProxyMetrics();
  const link = new PrimaryLink(send);
  const breakers = new BreakerMirrors(link, clock);
  const sharedStore = storeBuilder({
    clock,
    metrics,
    logger,
    // Read from the store in force: a store a reload retired may still report.
    onHealthChange: () => send({ t: 'store', degraded: host?.store.degraded() ?? false }),
  });
  const buildStore = (p: Policy): StoreBundle =>
    p.store.type === 'memory' ? remoteBundle(p, link) : sharedStore(p);

  let host: RuntimeHost | null = null;
  let dataPlane: DataPlane | null = null;
  // Policies are applied one at a time, in the order they came.
  let applying: Promise<void> = Promise.resolve();
  let stopping = false;

  async function apply(m: Extract<ToWorker, { t: 'policy' }>): Promise<void> {
    if (host === null) {
      host = await RuntimeHost.start(m.policy, { clock, metrics, breakers, buildStore }, m.version);
      breakers.update(m.breakers);
      const h = host;
      dataPlane = new DataPlane({
        runtime: () => h.runtime,
        metrics,
        logger,
        clock,
        hashId: logHasher(env.FLOODGATE_LOG_SECRET),
        client: clientSettingsFromEnv(env),
      });
      const address = await listenOrFail(dataPlane, m.policy);
      if (address === null) return;
      logger.info({ listen: address, version: m.version }, 'worker listening');
    } else {
      await host.apply(m.policy, m.version);
      breakers.update(m.breakers);
    }
    send({ t: 'applied', version: m.version });
  }

  async function listenOrFail(dp: DataPlane, policy: Policy): Promise<AddressInfo | null> {
    return new Promise((resolve) => {
      dp.server.once('error', (err: NodeJS.ErrnoException) => {
        send({ t: 'failed', code: err.code ?? 'error', message: err.message });
        resolve(null);
        stop(0, 1);
      });
      dp.server.listen(policy.listen.port, policy.listen.host, () =>
        resolve(dp.server.address() as AddressInfo),
      );
    });
  }

  function stop(drainMs: number, code = 0): void {
    if (stopping) return;
    stopping = true;
    void (async () => {
      if (dataPlane?.server.listening) await drainDataPlane(dataPlane, drainMs, CLOSE_STEP_MS);
      if (host !== null) {
        await within(host.destroyPools(), CLOSE_STEP_MS);
        await within(host.store.close(), CLOSE_STEP_MS);
      }
      logger.flush(() => process.exit(code));
    })();
  }

  process.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'answers':
        return link.receive(m);
      case 'breakers':
        return breakers.update(m.states);
      case 'policy':
        applying = applying.then(
          () => apply(m),
          () => apply(m),
        );
        return;
      case 'scrape':
        void metrics.registry
          .getMetricsAsJSON()
          .then((json) => send({ t: 'metrics', id: m.id, metrics: json }));
        return;
      case 'drain':
        return stop(m.drainMs);
    }
  });
  process.on('disconnect', () => {
    link.fail(new Error('the primary process is gone'));
    logger.error('the primary process is gone; stopping');
    stop(ORPHAN_DRAIN_MS, 1);
  });
  // The primary stops the cluster: Ctrl-C reaches every process of the group, and SIGHUP (a reload, or
  // a closed terminal) is the primary's to act on. SIGTERM sent to a worker alone stops just that one.
  process.on('SIGINT', () => undefined);
  process.on('SIGHUP', () => undefined);
  process.on('SIGTERM', () => stop(DRAIN_MS));
  send({ t: 'hello' });
}
