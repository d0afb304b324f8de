// Fault 4: the limiter on a Redis Cluster (3 masters, 3 replicas, real redis-servers), and a master
// SIGKILLed under load. The limiter must work unchanged on the cluster (every identity's keys share a
// hash tag, so each atomic script stays on one slot, for both algorithms), keep serving during the
// failover as on_error says (local: 200s with headers; deny: 200 or the store-unavailable 503; no
// request waiting longer than store.timeout), and count exactly again on the promoted replica after.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProxy, getJson, spawnProxy, tempDir, writePolicy } from '../helpers/proxy.js';
import { uniquePrefix } from '../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';
import { formatCounts, maxMs, type Sample, startLoad, statusCounts } from './lib/load.js';
import { type RedisCluster, redisCli, startRedisCluster } from './lib/redis-cluster.js';
import { recordFault } from './lib/report.js';

const STORE_TIMEOUT_MS = 200;
const SLACK_MS = 1_000;
const LIMIT = 5;
const KEYS = 30;
const CLIENTS_PER_PROXY = 8;

type Mode = 'local' | 'deny';

describe('fault 4: Redis Cluster with a master killed', () => {
  const prefix = uniquePrefix('faults-cluster');
  let cluster: RedisCluster;
  let upstream: TestUpstream;
  let dir: string;
  const proxies = new Map<Mode, ChildProxy>();
  // A request that hangs fails after 10 s instead of holding the test.
  const agent = new Agent({ connections: 64, headersTimeout: 10_000 });
  let round = 0;

  beforeAll(async () => {
    [cluster, upstream, dir] = await Promise.all([
      startRedisCluster({ masters: 3, nodeTimeoutMs: 1_000 }),
      startUpstream(),
      tempDir('faults-cluster'),
    ]);
    await Promise.all(
      (['local', 'deny'] as const).map(async (mode) => {
        const file = join(dir, `${mode}.yaml`);
        await writePolicy(file, {
          version: 1,
          store: {
            type: 'redis',
            cluster: true,
            url: cluster.seedUrl,
            prefix,
            timeout: `${STORE_TIMEOUT_MS}ms`,
            on_error: mode,
          },
          upstreams: { app: { url: upstream.url } },
          routes: [
            {
              name: 'log',
              match: { path: '/log' },
              upstream: 'app',
              limits: {
                key: 'header:X-Client',
                hourly: LIMIT,
                daily: LIMIT,
                windows: [{ name: 'm', limit: LIMIT, per: '1m' }],
              },
            },
            {
              name: 'counter',
              match: { path: '/counter' },
              upstream: 'app',
              limits: { key: 'header:X-Client', hourly: LIMIT, daily: LIMIT, algorithm: 'sliding-counter' },
            },
            {
              name: 'load',
              match: { path: '/load' },
              upstream: 'app',
              limits: { key: 'header:X-Client', hourly: 1_000_000, daily: 1_000_000 },
            },
          ],
        });
        proxies.set(mode, await spawnProxy(file));
      }),
    );
  });

  afterAll(async () => {
    await Promise.all([...proxies.values()].map((p) => p.kill()));
    await agent.close();
    await upstream?.close();
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function send(p: ChildProxy, path: string, key: string) {
    const started = performance.now();
    const r = await request(`${p.url}${path}`, { dispatcher: agent, headers: { 'x-client': key } });
    const body = await r.body.text();
    return { status: r.statusCode, body, headers: r.headers, ms: performance.now() - started };
  }

  /** Fresh keys on every master, each sent LIMIT + 2 times through both proxies: exactly LIMIT pass. */
  async function expectExactLimits(): Promise<number> {
    round++;
    const both = [...proxies.values()];
    const results = await Promise.all(
      Array.from({ length: KEYS }, async (_, k) => {
        const key = `r${round}-k${k}`;
        const log = await Promise.all(
          Array.from({ length: LIMIT + 2 }, (_, i) => send(both[i % 2]!, '/log', key)),
        );
        const counter = await Promise.all(
          Array.from({ length: LIMIT + 2 }, (_, i) => send(both[i % 2]!, '/counter', key)),
        );
        return { log: log.map((r) => r.status), counter: counter.map((r) => r.status) };
      }),
    );
    for (const r of results) {
      expect(r.log.filter((s) => s === 200)).toHaveLength(LIMIT);
      expect(r.log.filter((s) => s !== 200 && s !== 429)).toEqual([]);
      expect(r.counter.filter((s) => s === 200)).toHaveLength(LIMIT);
      expect(r.counter.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    }
    return results.length;
  }

  async function storeOk(): Promise<void> {
    await waitFor(
      async () => {
        for (const p of proxies.values()) {
          if ((await getJson<{ store: string }>(`${p.admin}/readyz`)).body.store !== 'ok') return false;
        }
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'both proxies to report the store ok' },
    );
  }

  /**
   * A few requests per proxy, one at a time, over keys on every master: the cluster client connects to
   * each node and each script gets cached there. Cold, the first burst of exactLimits (105 calls per
   * proxy, each a NOSCRIPT then an EVAL on a node still connecting) can outlast store.timeout on a
   * loaded machine, and then on_error rightly applies: that is a cold start, not the limit under test.
   */
  async function warmUp(): Promise<void> {
    await Promise.all(
      [...proxies.values()].map(async (p) => {
        for (let k = 0; k < 20; k++)
          for (const path of ['/log', '/counter']) await send(p, path, `warm-${k}`);
      }),
    );
    await storeOk();
  }

  async function keysPerMaster(): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (const n of (await cluster.nodes()).filter((x) => x.role === 'master' && !x.failed && x.slots > 0)) {
      const keys = (await redisCli(n.port, '--scan', '--pattern', `${prefix}*`)).trim();
      out.set(n.port, keys === '' ? 0 : keys.split('\n').length);
    }
    return out;
  }

  it('limits exactly on the cluster, serves through a failover as on_error says, and after it', async () => {
    // Before: every master holds some identities, and both algorithms count exactly.
    await warmUp();
    await expectExactLimits();
    const spread = await keysPerMaster();
    expect(spread.size).toBe(3);
    for (const n of spread.values()) expect(n).toBeGreaterThan(0);

    // Under load through both proxies, kill the master with the most keys.
    const samples = new Map<Mode, Sample[]>();
    const loads = [...proxies.entries()].map(([mode, p]) => {
      const run = startLoad({
        concurrency: CLIENTS_PER_PROXY,
        durationMs: 60_000,
        maxRequests: 500_000,
        send: (worker, i) => send(p, '/load', `load-${worker}-${i % 50}`),
      });
      samples.set(mode, run.samples);
      return run;
    });
    await waitFor(() => [...samples.values()].every((s) => s.length > 100), { what: 'load to flow' });
    const victim = [...spread.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    const nodesBefore = await cluster.nodes();
    const victimId = nodesBefore.find((n) => n.port === victim)!.id;
    const replica = nodesBefore.find((n) => n.masterId === victimId)!;
    const killedAt = performance.now();
    await cluster.kill(victim);

    // The replica takes over: it is a master with slots and the cluster says ok.
    await waitFor(
      async () => {
        const nodes = await cluster.nodes();
        const promoted = nodes.find((n) => n.port === replica.port);
        return promoted?.role === 'master' && promoted.slots > 0 && (await cluster.state()) === 'ok';
      },
      { timeoutMs: 30_000, intervalMs: 100, what: `replica ${replica.port} to take over from ${victim}` },
    );
    const failoverMs = performance.now() - killedAt;
    // And the proxies use it: the store is healthy again in both.
    await storeOk();
    const recoveredMs = performance.now() - killedAt;
    const all = await Promise.all(loads.map((l) => l.end()));
    expect(all.every((s) => s.length > 0)).toBe(true);

    const local = samples.get('local')!;
    const deny = samples.get('deny')!;
    for (const s of [...local, ...deny]) expect(s.status, s.error).not.toBe(0);
    expect(local.filter((s) => s.status !== 200)).toEqual([]);
    expect(local.every((s) => s.headers?.['ratelimit-policy'] !== undefined)).toBe(true);
    const badDeny = deny.filter(
      (s) => s.status !== 200 && !(s.status === 503 && s.body === '{"error":"Rate limit store unavailable"}'),
    );
    expect(badDeny).toEqual([]);
    const slowest = Math.max(maxMs(local), maxMs(deny));
    expect(slowest).toBeLessThan(STORE_TIMEOUT_MS + SLACK_MS);

    // After: exact again, and the promoted replica serves its share.
    await expectExactLimits();
    const after = await keysPerMaster();
    expect(after.get(replica.port)).toBeGreaterThan(0);

    await recordFault({
      fault: '4 Redis Cluster (3 masters + 3 replicas): master SIGKILLed under load',
      observed:
        `exact limits on all 3 masters (sliding-log and sliding-counter, ${KEYS} keys × 2 proxies); ` +
        `replica promoted after ${Math.round(failoverMs)} ms, store ok in both proxies after ${Math.round(recoveredMs)} ms; ` +
        `local: ${formatCounts(statusCounts(local))}; deny: ${formatCounts(statusCounts(deny))}; ` +
        `max ${Math.round(slowest)} ms; exact limits again after, promoted replica holds ${after.get(replica.port)} keys`,
      lost: 'nothing: 0 unanswered, 0 5xx with local, only the store-unavailable 503 with deny',
    });
  });

  it('answers within store.timeout, as on_error says, with the whole cluster gone', async () => {
    for (const port of cluster.ports) await cluster.kill(port);
    const answers = new Map<Mode, { status: number; ms: number }[]>();
    for (const [mode, p] of proxies) {
      const list: { status: number; ms: number }[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await send(p, '/load', `gone-${i}`);
        list.push({ status: r.status, ms: r.ms });
        if (mode === 'deny' && r.status === 503)
          expect(r.body).toBe('{"error":"Rate limit store unavailable"}');
      }
      answers.set(mode, list);
    }
    expect(answers.get('local')!.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(answers.get('deny')!.map((a) => a.status)).toEqual(Array(20).fill(503));
    const slowest = Math.max(...[...answers.values()].flat().map((a) => a.ms));
    expect(slowest).toBeLessThan(STORE_TIMEOUT_MS + SLACK_MS);
    await recordFault({
      fault: '4 Redis Cluster: every node SIGKILLed',
      observed: `local: 20×200, deny: 20×503 (store unavailable), slowest ${Math.round(slowest)} ms (store.timeout ${STORE_TIMEOUT_MS} ms)`,
      lost: 'nothing: no request waited on the dead cluster',
    });
  });
});
