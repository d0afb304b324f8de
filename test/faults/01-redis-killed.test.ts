// Fault 1: the limiter's Redis is SIGKILLed under load and comes back empty, for each on_error mode.
// A proxy process serves 16 concurrent clients throughout. While Redis is gone every request must be
// answered as the mode says (local: limited in-process, headers and all; allow: passed without limit
// headers; deny: the store-unavailable 503), none may wait longer than store.timeout plus the upstream's
// own time, and local and allow must never answer 5xx. Once Redis is back the same process counts in
// it again: the shared limit holds across processes (a second proxy) without a restart.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProxy, getJson, spawnProxy, tempDir, writePolicy } from '../helpers/proxy.js';
import { uniquePrefix } from '../helpers/redis.js';
import { type PrivateRedis, startPrivateRedis } from '../helpers/redis-server.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';
import { formatCounts, maxMs, percentile, type Sample, startLoad, statusCounts } from './lib/load.js';
import { recordFault } from './lib/report.js';

const STORE_TIMEOUT_MS = 100;
/** The upstream's own time per request. */
const UPSTREAM_MS = 20;
/** Scheduling on a loaded two-core machine; far below the outage, which is what nobody may wait for. */
const SLACK_MS = 1_000;
const OUTAGE_MS = 4_000;
const CLIENTS = 16;
const SMALL_LIMIT = 5;

type Mode = 'local' | 'allow' | 'deny';

async function flushAll(url: string): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 0, lazyConnect: true });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.flushall();
  } finally {
    redis.disconnect();
  }
}

async function keyCount(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 0, lazyConnect: true });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.keys(`${prefix}*`)).length;
  } finally {
    redis.disconnect();
  }
}

describe.each<Mode>(['local', 'allow', 'deny'])('fault 1: Redis killed under load, on_error %s', (mode) => {
  const prefix = uniquePrefix(`faults-redis-killed-${mode}`);
  let redis: PrivateRedis;
  let upstream: TestUpstream;
  let dir: string;
  const proxies: ChildProxy[] = [];
  // A request that hangs fails after 10 s instead of holding the test: it counts as unanswered.
  const agent = new Agent({ connections: CLIENTS * 2, keepAliveTimeout: 30_000, headersTimeout: 10_000 });

  beforeAll(async () => {
    redis = await startPrivateRedis();
    upstream = await startUpstream();
    upstream.mode = { kind: 'slow', delayMs: UPSTREAM_MS };
    dir = await tempDir(`faults-redis-killed-${mode}`);
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, {
      version: 1,
      store: { type: 'redis', url: redis.url, prefix, timeout: `${STORE_TIMEOUT_MS}ms`, on_error: mode },
      upstreams: { app: { url: upstream.url, timeouts: { response: '5s' } } },
      routes: [
        // Each client has its own key and room to spare: the load is never limited.
        {
          name: 'load',
          match: { path: '/load' },
          upstream: 'app',
          limits: { key: 'header:X-Client', hourly: 100_000, daily: 100_000 },
        },
        {
          name: 'small',
          match: { path: '/small' },
          upstream: 'app',
          limits: { hourly: SMALL_LIMIT, daily: SMALL_LIMIT },
        },
      ],
    });
    proxies.push(await spawnProxy(file), await spawnProxy(file));
  });

  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.kill()));
    await agent.close();
    await upstream?.close();
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function send(url: string, headers: Record<string, string> = {}) {
    const r = await request(url, { dispatcher: agent, headers });
    const body = await r.body.text();
    return { status: r.statusCode, body, headers: r.headers };
  }

  /** What one answer must look like while the store is unavailable in this mode. */
  function outageAnswerProblem(s: Sample): string | null {
    const h = s.headers ?? {};
    if (mode === 'deny') {
      if (s.status !== 503) return `status ${s.status}`;
      if (s.body !== '{"error":"Rate limit store unavailable"}' || h['retry-after'] !== '1')
        return `503 body ${s.body}`;
      return null;
    }
    if (s.status !== 200) return `status ${s.status}`;
    if (mode === 'allow' && h.ratelimit !== undefined) return 'limit headers on a passed request';
    if (mode === 'local' && h['ratelimit-policy'] === undefined) return 'no limit headers from local';
    return null;
  }

  it('keeps answering as the mode says, within the store timeout, and counts in Redis again after', async () => {
    const [main, other] = [proxies[0]!, proxies[1]!];
    let phase: 'before' | 'outage' | 'after' = 'before';
    const phases = new Map<Sample, string>();
    const load = startLoad({
      concurrency: CLIENTS,
      durationMs: 60_000,
      maxRequests: 200_000,
      send: (worker) => send(`${main.url}/load`, { 'x-client': `c${worker}` }),
    });
    const tag = (): void => {
      for (const s of load.samples) if (!phases.has(s)) phases.set(s, phase);
    };

    await waitFor(() => load.samples.length >= 200, { timeoutMs: 20_000, what: 'load to flow' });
    tag();
    await redis.stop();
    phase = 'outage';
    const outageStarted = performance.now();
    await waitFor(() => performance.now() - outageStarted >= OUTAGE_MS, {
      timeoutMs: OUTAGE_MS + 5_000,
      intervalMs: 100,
      what: 'the outage to last',
    });
    tag();
    const outageEnded = performance.now();
    await redis.start();
    phase = 'after';
    // Recovered: the store says ok and counts land in the (empty) restarted Redis.
    const recoveredIn = await waitFor(
      async () => {
        const ready = await getJson<{ store: string }>(`${main.admin}/readyz`);
        if (ready.body.store !== 'ok') return null;
        return (await keyCount(redis.url, prefix)) > 0 ? performance.now() - outageEnded : null;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'the proxy to count in the restarted Redis' },
    );
    const samples = await load.end();
    tag();

    // Nothing went unanswered, and nobody waited for Redis.
    const unanswered = samples.filter((s) => s.status === 0);
    expect(unanswered, 'requests without an HTTP answer').toEqual([]);
    const bound = STORE_TIMEOUT_MS + UPSTREAM_MS + SLACK_MS;
    expect(maxMs(samples), `slowest of ${samples.length} requests`).toBeLessThan(bound);

    // During the outage (a request that started in it and ended before Redis was back).
    const during = samples.filter((s) => s.at >= outageStarted + 50 && s.at + s.ms <= outageEnded);
    expect(during.length).toBeGreaterThan(50);
    const wrong = during.map(outageAnswerProblem).filter((p) => p !== null);
    expect(wrong, 'answers during the outage').toEqual([]);
    if (mode !== 'deny') {
      expect(samples.filter((s) => s.status >= 500)).toEqual([]);
    }
    // Before the kill, Redis decides: every answer is a 200 with limit headers.
    const outside = samples.filter((s) => phases.get(s) === 'before');
    expect(outside.every((s) => s.status === 200 && s.headers?.ratelimit !== undefined)).toBe(true);

    // The shared limit works again, in the same processes: both proxies count one /small limit in Redis.
    expect(main.child.exitCode).toBeNull();
    await waitFor(
      async () => (await getJson<{ store: string }>(`${other.admin}/readyz`)).body.store === 'ok',
      {
        timeoutMs: 20_000,
        intervalMs: 100,
        what: 'the second proxy to use the restarted Redis',
      },
    );
    await flushAll(redis.url);
    const statuses: number[] = [];
    for (let i = 0; i < SMALL_LIMIT + 2; i++)
      statuses.push((await send(`${[main, other][i % 2]!.url}/small`)).status);
    expect(statuses).toEqual([...Array(SMALL_LIMIT).fill(200), 429, 429]);

    const counts = statusCounts(samples);
    await recordFault({
      fault: `1 Redis SIGKILLed for ${OUTAGE_MS / 1000} s under ${CLIENTS} clients, on_error ${mode}`,
      observed:
        `${samples.length} requests: ${formatCounts(counts)}; during outage ${formatCounts(statusCounts(during))}; ` +
        `max ${Math.round(maxMs(samples))} ms (bound ${bound}), p99 ${Math.round(percentile(samples, 99))} ms; ` +
        `counting in Redis again ${Math.round(recoveredIn)} ms after restart; shared limit ${SMALL_LIMIT}/${SMALL_LIMIT} across 2 proxies`,
      lost: `${unanswered.length} unanswered, ${samples.filter((s) => s.status >= 500 && !(mode === 'deny' && s.status === 503)).length} 5xx${mode === 'deny' ? " besides the mode's 503" : ''}, ${wrong.length} wrong answers`,
    });
  });
});
