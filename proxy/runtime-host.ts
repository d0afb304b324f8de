// Holds the policy in force and what it is compiled into: the rate limit store, the connection pools
// and the Runtime the data plane reads. A single proxy, a cluster's primary and each of its workers
// all keep theirs here, so a policy is applied the same way wherever it lands.
import type { BreakerSource } from '../core/breaker/registry.js';
import type { Clock } from '../core/clock.js';
import type { Policy } from './config/schema.js';
import { compileRuntime, type PoolEntry } from './http/compile-runtime.js';
import type { Runtime } from './http/runtime.js';
import type { ProxyMetrics } from './observability/metrics.js';
import { type StoreBundle, storeHash } from './ratelimit/build-store.js';

export interface RuntimeHostOptions {
  readonly clock: Clock;
  readonly metrics: ProxyMetrics;
  readonly breakers: BreakerSource;
  /** Builds the store a policy's `store:` section asks for (a cluster worker's differs: see cluster/). */
  readonly buildStore: (policy: Policy) => StoreBundle;
}

export class RuntimeHost {
  private current: Policy;
  private compiled!: Runtime;
  private bundle: StoreBundle;
  private pools: ReadonlyMap<string, PoolEntry> = new Map();

  private constructor(
    private readonly o: RuntimeHostOptions,
    policy: Policy,
  ) {
    this.current = policy;
    this.bundle = o.buildStore(policy);
  }

  /** Builds the store for `policy` (waiting, boundedly, for its first connection) and compiles it. */
  static async start(policy: Policy, o: RuntimeHostOptions, version = 1): Promise<RuntimeHost> {
    const host = new RuntimeHost(o, policy);
    await host.bundle.ready;
    host.compile(policy, version);
    return host;
  }

  get policy(): Policy {
    return this.current;
  }

  get runtime(): Runtime {
    return this.compiled;
  }

  get version(): number {
    return this.compiled.version;
  }

  get store(): StoreBundle {
    return this.bundle;
  }

  /**
   * Puts `policy` in force as `version` (by default the next one). A new store is built only when the
   * `store:` section changed; the old one is closed once the new runtime no longer uses it.
   */
  async apply(policy: Policy, version = this.version + 1): Promise<void> {
    const old = this.bundle;
    if (storeHash(policy) !== old.hash) {
      const fresh = this.o.buildStore(policy);
      await fresh.ready;
      this.bundle = fresh;
    }
    this.compile(policy, version);
    this.current = policy;
    if (old !== this.bundle) void old.close();
  }

  /** Destroys the pools, cutting what is still in flight on them (a shutdown, after its drain). */
  destroyPools(): Promise<unknown> {
    return Promise.all([...this.pools.values()].map((e) => e.pool.destroy()));
  }

  private compile(policy: Policy, version: number): void {
    const next = compileRuntime({
      policy,
      version,
      loadedAt: new Date(this.o.clock.now()),
      breakers: this.o.breakers,
      metrics: this.o.metrics,
      store: this.bundle.store,
      pools: this.pools,
    });
    this.pools = next.pools;
    // close() lets requests already on a retired pool finish.
    for (const e of next.retired) void e.pool.close();
    this.compiled = next.runtime;
  }
}
