// The Redis connection the limiter uses. Tuned for a dependency that may disappear: commands fail
// at once while disconnected (no offline queue), so an outage costs a request nothing beyond the
// breaker in front of the store, and ioredis keeps reconnecting in the background.
//
// With `cluster`, the URL names one seed node of a Redis Cluster and the client is an ioredis
// Cluster, which finds the other nodes, follows MOVED/ASK and refreshes its slot map after a
// failover. The limiter's keys share one hash tag per identity, so each call stays on one slot.
import { Cluster, Redis } from 'ioredis';

export interface RedisClientOptions {
  /** Bound on one command; ioredis rejects it after this. */
  readonly commandTimeoutMs: number;
  /**
   * ioredis auto-pipelining: commands issued in the same tick share one write. Off by default: the
   * store already sends a turn's decisions as one call, and on top of that the pipeline only adds work
   * and latency (bench/README.md). Never on a cluster.
   */
  readonly autoPipelining?: boolean;
  /** `url` is a seed node of a Redis Cluster. */
  readonly cluster?: boolean;
}

/** Both clients answer the same commands and events; the store takes either. */
export type RedisClient = Redis | Cluster;

const retryStrategy = (attempt: number): number => Math.min(50 * 2 ** attempt, 2_000);

/**
 * How often a cluster client re-reads the slot map on its own. A master that dies answers no MOVED,
 * so this bounds how long its slots stay pointed at it once a replica has taken over.
 */
const CLUSTER_SLOTS_REFRESH_MS = 1_000;

export function connectRedis(url: string, o: RedisClientOptions): RedisClient {
  const redis = o.cluster
    ? connectCluster(url, o)
    : new Redis(url, {
        commandTimeout: o.commandTimeoutMs,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        enableAutoPipelining: o.autoPipelining ?? false,
        retryStrategy,
        lazyConnect: false,
      });
  // Errors surface through failed commands and the store's breaker; the event must still be
  // handled, or ioredis prints each reconnect failure.
  redis.on('error', () => {});
  return redis;
}

function connectCluster(url: string, o: RedisClientOptions): Cluster {
  const u = new URL(url);
  return new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], {
    // On: the cluster client connects to each node lazily, and without a queue every command that
    // meets a node still connecting (at start, after a failover) would fail. commandTimeout starts
    // only once a node has the command, so the proxy bounds each cluster call at store.timeout itself.
    enableOfflineQueue: true,
    // Off: an auto-pipeline batches calls to one node, and when a failover answers some of them with
    // MOVED it cannot redirect just those (ioredis retries a batch only when all of it failed alike),
    // so the MOVED would reach the limiter as an error. Single commands follow MOVED and ASK.
    enableAutoPipelining: false,
    clusterRetryStrategy: retryStrategy,
    // A command that meets a dead node or a failover fails now (the store's breaker and on_error
    // decide); later ones go to the new master once the slot map is refreshed.
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    retryDelayOnTryAgain: 0,
    maxRedirections: 3,
    slotsRefreshInterval: CLUSTER_SLOTS_REFRESH_MS,
    slotsRefreshTimeout: Math.max(o.commandTimeoutMs, 1_000),
    redisOptions: {
      commandTimeout: o.commandTimeoutMs,
      maxRetriesPerRequest: 0,
      username: u.username ? decodeURIComponent(u.username) : undefined,
      password: u.password ? decodeURIComponent(u.password) : undefined,
      tls: u.protocol === 'rediss:' ? {} : undefined,
    },
  });
}

/** Whether a Redis answers at `url` within `timeoutMs`; used before deciding how to run. */
export async function pingRedis(url: string, timeoutMs = 1_000): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}
