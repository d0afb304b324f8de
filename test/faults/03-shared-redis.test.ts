// Fault 3: three proxy processes share one Redis, under concurrent load from many clients.
// sliding-log is exact: per client key, the requests allowed across all three processes sum exactly to
// the limit. sliding-counter keeps its documented bound (proxy/ratelimit/redis-store.ts): at most `limit`
// per fixed window and at most 2·limit − 1 in any span of one window. The bound is checked soundly from
// the client side: Redis's TIME and Date.now() read the same clock, and a request's decision lies
// between its send and its answer, so only requests whose whole round trip lies inside a span count.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProxy, spawnProxy, tempDir, writePolicy } from '../helpers/proxy.js';
import { uniquePrefix } from '../helpers/redis.js';
import { type PrivateRedis, startPrivateRedis } from '../helpers/redis-server.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { formatCounts, startLoad, statusCounts } from './lib/load.js';
import { recordFault } from './lib/report.js';

const PROXIES = 3;
const LOG_LIMIT = 40;
const LOG_KEYS = 12;
const LOG_PER_KEY = 120;
const COUNTER_LIMIT = 20;
const COUNTER_WINDOW_MS = 2_000;
const COUNTER_KEYS = 5;
const COUNTER_CLIENTS = 30;
const COUNTER_RUN_MS = 7_000;

interface Timed {
  key: string;
  status: number;
  /** Epoch ms when sent and when answered. */
  sent: number;
  answered: number;
}

describe('fault 3: three proxies share one Redis', () => {
  const prefix = uniquePrefix('faults-three-proxies');
  let redis: PrivateRedis;
  let upstream: TestUpstream;
  let dir: string;
  let proxies: ChildProxy[] = [];
  // A request that hangs fails after 10 s instead of holding the test.
  const agent = new Agent({ connections: 64, headersTimeout: 10_000 });
  const rows: string[] = [];

  beforeAll(async () => {
    redis = await startPrivateRedis();
    upstream = await startUpstream();
    dir = await tempDir('faults-three-proxies');
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, {
      version: 1,
      // deny with a generous timeout: a slow call on a loaded machine must not fall back to a local
      // count (which would admit more) but show up as a 503 the assertions catch.
      store: { type: 'redis', url: redis.url, prefix, timeout: '5s', on_error: 'deny' },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          name: 'log',
          match: { path: '/log' },
          upstream: 'app',
          limits: { key: 'header:X-Client', hourly: LOG_LIMIT, daily: LOG_LIMIT, algorithm: 'sliding-log' },
        },
        {
          name: 'counter',
          match: { path: '/counter' },
          upstream: 'app',
          limits: {
            key: 'header:X-Client',
            windows: [{ name: 'w', limit: COUNTER_LIMIT, per: `${COUNTER_WINDOW_MS}ms` }],
            algorithm: 'sliding-counter',
          },
        },
      ],
    });
    proxies = await Promise.all(Array.from({ length: PROXIES }, () => spawnProxy(file)));
  });

  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.kill()));
    await agent.close();
    await upstream?.close();
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (rows.length > 0) {
      await recordFault({
        fault: `3 Three proxy processes, one Redis, concurrent clients`,
        observed: rows.join('; '),
        lost: 'nothing: no over-admission, no 5xx, no unanswered request',
      });
    }
  });

  async function send(path: string, key: string, via: number): Promise<Timed> {
    const sent = Date.now();
    const r = await request(`${proxies[via % PROXIES]!.url}${path}`, {
      dispatcher: agent,
      headers: { 'x-client': key },
    });
    await r.body.dump();
    return { key, status: r.statusCode, sent, answered: Date.now() };
  }

  it(`sliding-log: per key, exactly ${LOG_LIMIT} allowed across all ${PROXIES} processes`, async () => {
    // Every request of every key at once, interleaved over the proxies.
    const jobs: { key: string; via: number }[] = [];
    for (let i = 0; i < LOG_PER_KEY; i++)
      for (let k = 0; k < LOG_KEYS; k++) jobs.push({ key: `log-${k}`, via: i + k });
    const hitsBefore = upstream.hits;
    const results = await Promise.all(jobs.map((j) => send('/log', j.key, j.via)));
    expect(statusCounts(results)).toEqual({
      200: LOG_KEYS * LOG_LIMIT,
      429: LOG_KEYS * (LOG_PER_KEY - LOG_LIMIT),
    });
    const perKey = new Map<string, number>();
    const perProxy = new Array<number>(PROXIES).fill(0);
    results.forEach((r, i) => {
      if (r.status !== 200) return;
      perKey.set(r.key, (perKey.get(r.key) ?? 0) + 1);
      perProxy[jobs[i]!.via % PROXIES]!++;
    });
    expect([...perKey.values()]).toEqual(Array(LOG_KEYS).fill(LOG_LIMIT));
    // Every process admitted some: the limit was shared, not enforced by one of them.
    for (const n of perProxy) expect(n).toBeGreaterThan(0);
    expect(upstream.hits - hitsBefore).toBe(LOG_KEYS * LOG_LIMIT);
    // And Redis holds exactly the limit per key (one log per identity, shared by its windows).
    const client = new Redis(redis.url);
    try {
      const keys = await client.keys(`${prefix}*:log`);
      expect(keys).toHaveLength(LOG_KEYS);
      for (const k of keys) expect(await client.zcard(k)).toBe(LOG_LIMIT);
    } finally {
      client.disconnect();
    }
    rows.push(
      `sliding-log: ${results.length} concurrent requests, ${LOG_KEYS} keys → exactly ${LOG_LIMIT} allowed per key (by proxy ${perProxy.join('/')})`,
    );
  });

  it(`sliding-counter: ≤ ${COUNTER_LIMIT} per fixed window and ≤ ${2 * COUNTER_LIMIT - 1} in any window span`, async () => {
    const timed: Timed[] = [];
    const load = startLoad({
      concurrency: COUNTER_CLIENTS,
      durationMs: COUNTER_RUN_MS,
      maxRequests: 100_000,
      send: async (worker, i) => {
        const r = await send('/counter', `counter-${worker % COUNTER_KEYS}`, worker + i);
        timed.push(r);
        return { status: r.status };
      },
    });
    const samples = await load.done;
    expect(samples.filter((s) => s.status !== 200 && s.status !== 429)).toEqual([]);

    const W = COUNTER_WINDOW_MS;
    let worstFixed = 0;
    let worstSpan = 0;
    let allowedTotal = 0;
    for (let k = 0; k < COUNTER_KEYS; k++) {
      const allowed = timed
        .filter((t) => t.key === `counter-${k}` && t.status === 200)
        .sort((a, b) => a.answered - b.answered);
      allowedTotal += allowed.length;
      // At least a window's worth got through over three and a half windows.
      expect(allowed.length).toBeGreaterThanOrEqual(COUNTER_LIMIT);
      const fixed = new Map<number, number>();
      for (const t of allowed) {
        const i = Math.floor(t.sent / W);
        if (Math.floor(t.answered / W) === i) fixed.set(i, (fixed.get(i) ?? 0) + 1);
      }
      for (const n of fixed.values()) worstFixed = Math.max(worstFixed, n);
      for (const anchor of allowed) {
        const inSpan = allowed.filter((t) => t.sent > anchor.answered - W && t.answered <= anchor.answered);
        worstSpan = Math.max(worstSpan, inSpan.length);
      }
    }
    expect(worstFixed).toBeLessThanOrEqual(COUNTER_LIMIT);
    expect(worstSpan).toBeLessThanOrEqual(2 * COUNTER_LIMIT - 1);
    rows.push(
      `sliding-counter: ${samples.length} requests from ${COUNTER_CLIENTS} clients over ${COUNTER_RUN_MS / 1000} s (${formatCounts(statusCounts(samples))}) → ` +
        `worst fixed window ${worstFixed}/${COUNTER_LIMIT}, worst span of W ${worstSpan}/${2 * COUNTER_LIMIT - 1}, ${allowedTotal} allowed`,
    );
  });
});
