// The shared store going away and coming back, with a real redis-server on a spare port, for each
// on_error mode: local keeps limiting in-process, allow passes without limit headers, deny answers 503.
// No request waits much longer than store.timeout, /readyz says degraded, and once Redis is back the
// shared limit works again without restarting the proxy. A frozen Redis (SIGSTOP: connected, silent)
// is the harder case for the timeout, so it gets its own pass.
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, metrics, metricValue, startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { uniquePrefix } from '../../helpers/redis.js';
import { type PrivateRedis, startPrivateRedis } from '../../helpers/redis-server.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { waitFor } from '../../helpers/wait.js';

const STORE_TIMEOUT_MS = 200;
/** Generous on a loaded machine; what matters is that nobody waits for Redis to come back. */
const MAX_WAIT_MS = STORE_TIMEOUT_MS + 1_000;
const LIMIT = 3;

type Mode = 'local' | 'allow' | 'deny';

async function timed(url: string) {
  const started = performance.now();
  const r = await request(url);
  const text = await r.body.text();
  return {
    status: r.statusCode,
    headers: r.headers as Record<string, string | undefined>,
    text,
    ms: performance.now() - started,
  };
}

/** Keys under `prefix` in the private Redis, through a short-lived connection. */
async function keysIn(url: string, prefix: string): Promise<string[]> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return await redis.keys(`${prefix}*`);
  } finally {
    redis.disconnect();
  }
}

async function flushAll(url: string): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 0 });
  redis.on('error', () => {});
  try {
    await redis.flushall();
  } finally {
    redis.disconnect();
  }
}

describe.each<Mode>(['local', 'allow', 'deny'])('store outage with on_error: %s', (mode) => {
  const prefix = uniquePrefix(`proxy-outage-${mode}`);
  let redis: PrivateRedis;
  let upstream: TestUpstream;
  let p: TestProxy;

  const readyz = () => getJson<{ status: string; store: string }>(`${p.admin}/readyz`);

  /** What every response during an outage must look like in this mode. */
  function expectOutageAnswer(r: Awaited<ReturnType<typeof timed>>): void {
    expect(r.ms).toBeLessThan(MAX_WAIT_MS);
    if (mode === 'deny') {
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('1');
      expect(r.text).toBe('{"error":"Rate limit store unavailable"}');
    } else if (mode === 'allow') {
      expect(r.status).toBe(200);
      expect(r.headers.ratelimit).toBeUndefined();
      expect(r.headers['ratelimit-policy']).toBeUndefined();
      expect(r.headers['x-ratelimit-remaining']).toBeUndefined();
    } else {
      expect(r.status).toBe(200);
      expect(r.headers['ratelimit-policy']).toBe('"hourly";q=1000;w=3600, "daily";q=1000;w=86400');
      expect(r.headers['x-ratelimit-remaining']).toMatch(/^\d+$/);
    }
  }

  /** Sends requests until the proxy counts in the (restarted) Redis again and says the store is ok. */
  async function recovered(): Promise<void> {
    await waitFor(
      async () => {
        const r = await timed(`${p.url}/big`);
        if (r.status !== 200 || r.headers.ratelimit === undefined) return false;
        if ((await readyz()).body.store !== 'ok') return false;
        return (await keysIn(redis.url, prefix)).length > 0;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'the proxy to use the restarted Redis' },
    );
  }

  /** The limit of /small is enforced by Redis: it holds across a FLUSHALL only if it lives elsewhere. */
  async function expectSharedLimit(): Promise<void> {
    await flushAll(redis.url);
    const statuses: number[] = [];
    for (let i = 0; i <= LIMIT; i++) statuses.push((await timed(`${p.url}/small`)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect((await keysIn(redis.url, prefix)).some((k) => k.includes('small'))).toBe(true);
    await flushAll(redis.url);
    expect((await timed(`${p.url}/small`)).status).toBe(200);
  }

  beforeAll(async () => {
    redis = await startPrivateRedis();
    upstream = await startUpstream();
    p = await startTestProxy({
      version: 1,
      store: {
        type: 'redis',
        url: redis.url,
        prefix,
        timeout: `${STORE_TIMEOUT_MS}ms`,
        on_error: mode,
      },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { name: 'big', match: { path: '/big' }, upstream: 'app', limits: { hourly: 1000, daily: 1000 } },
        {
          name: 'small',
          match: { path: '/small' },
          upstream: 'app',
          limits: { hourly: LIMIT, daily: LIMIT },
        },
      ],
    });
  });

  afterAll(async () => {
    await p?.close();
    await upstream?.close();
    await redis?.stop();
  });

  it('serves from Redis while it is up', async () => {
    const r = await timed(`${p.url}/big`);
    expect(r.status).toBe(200);
    expect(r.headers['x-ratelimit-remaining']).toBe('999');
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', store: 'ok' } });
    await expectSharedLimit();
  });

  it('applies on_error while Redis is down, within the store timeout, and recovers by itself', async () => {
    await redis.stop();
    for (let i = 0; i < 10; i++) expectOutageAnswer(await timed(`${p.url}/big`));
    if (mode === 'local') {
      // The in-process limiter enforces the route's limit by itself, headers and all.
      const small = [];
      for (let i = 0; i <= LIMIT; i++) small.push(await timed(`${p.url}/small`));
      expect(small.map((r) => r.status)).toEqual([200, 200, 200, 429]);
      expect(small.map((r) => r.headers['x-ratelimit-remaining'])).toEqual(['2', '1', '0', '0']);
      expect(JSON.parse(small[3]!.text)).toMatchObject({ error: 'Rate limit exceeded', limit: LIMIT });
    }
    const ready = await readyz();
    expect(ready.status).toBe(200);
    expect(ready.body.store).toBe('degraded');
    expect(metricValue(await metrics(p.admin), 'rate_limit_store_errors_total')).toBeGreaterThan(0);

    await redis.start();
    await recovered();
    await expectSharedLimit();
  });

  it('does not wait on a Redis that accepts connections but never answers', async () => {
    redis.pause();
    try {
      for (let i = 0; i < 8; i++) expectOutageAnswer(await timed(`${p.url}/big`));
      expect((await readyz()).body.store).toBe('degraded');
    } finally {
      redis.resume();
    }
    await recovered();
    await expectSharedLimit();
  });
});
