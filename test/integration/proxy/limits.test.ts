// Limits per route through a real proxy, a real upstream and real Redis: every window is counted in one
// step, the RateLimit headers and 429 body are exact, header-keyed limits count per key, shadow mode only
// reports, and a route without limits carries no limit headers.
import type { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../core/clock.js';
import { getJson, metrics, metricValue, startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { deletePrefix, newRedis, REDIS_URL, uniquePrefix } from '../../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

const HOUR = 3_600;
const DAY = 86_400;

/** `"hourly";r=3;t=3600, …` → { hourly: { r: 3, t: 3600 }, … } */
function parseRateLimit(value: string): Record<string, { r: number; t: number }> {
  const out: Record<string, { r: number; t: number }> = {};
  for (const item of value.split(', ')) {
    const m = /^"([^"]+)";r=(\d+);t=(\d+)$/.exec(item);
    if (!m) throw new Error(`bad RateLimit item ${JSON.stringify(item)} in ${JSON.stringify(value)}`);
    out[m[1]!] = { r: Number(m[2]), t: Number(m[3]) };
  }
  return out;
}

async function send(
  url: string,
  path: string,
  method: 'GET' | 'POST' = 'GET',
  headers: Record<string, string> = {},
) {
  const r = await request(url + path, { method, headers, body: method === 'POST' ? 'x' : undefined });
  const text = await r.body.text();
  const h = r.headers as Record<string, string | undefined>;
  return { status: r.statusCode, headers: h, text };
}

describe('rate limits per route (Redis store)', () => {
  const prefix = uniquePrefix('proxy-limits');
  let redis: Redis;
  let upstream: TestUpstream;
  let p: TestProxy;

  beforeAll(async () => {
    redis = newRedis();
    upstream = await startUpstream();
    p = await startTestProxy({
      version: 1,
      // deny: a store error must show up as a 503, never as a silently passed request.
      store: { type: 'redis', url: REDIS_URL, prefix, timeout: '2s', on_error: 'deny' },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          name: 'transcribe',
          match: { path: '/transcribe', methods: ['POST'] },
          upstream: 'app',
          limits: { hourly: 4, daily: 6, windows: [{ name: 'burst', limit: 3, per: '1m' }] },
        },
        { name: 'status', match: { path: '/status/*' }, upstream: 'app', limits: { hourly: 3, daily: 10 } },
        {
          name: 'api',
          match: { path: '/v1/*' },
          upstream: 'app',
          limits: { key: 'header:X-API-Key', hourly: 2, daily: 10 },
        },
        {
          name: 'reports',
          match: { path: '/reports/*' },
          upstream: 'app',
          limits: { hourly: 1, daily: 1, shadow: true },
        },
        { name: 'health', match: { path: '/healthz', methods: ['GET'] }, upstream: 'app' },
        {
          name: 'upload',
          match: { path: '/upload', methods: ['POST'] },
          upstream: 'app',
          max_body: '1kb',
          limits: { hourly: 5, daily: 10 },
        },
      ],
    });
  });

  afterAll(async () => {
    await p?.close();
    await upstream?.close();
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  it('counts every window of a route at once and sends the RateLimit headers', async () => {
    const policy = '"hourly";q=4;w=3600, "daily";q=6;w=86400, "burst";q=3;w=60';
    for (let i = 1; i <= 3; i++) {
      const before = Date.now();
      const r = await send(p.url, '/transcribe', 'POST');
      expect(r.status).toBe(200);
      expect(r.headers['x-upstream']).toBe('yes');
      expect(r.headers['ratelimit-policy']).toBe(policy);
      const windows = parseRateLimit(r.headers.ratelimit!);
      expect(Object.keys(windows)).toEqual(['hourly', 'daily', 'burst']);
      expect(windows.hourly!.r).toBe(4 - i);
      expect(windows.daily!.r).toBe(6 - i);
      expect(windows.burst!.r).toBe(3 - i);
      // t: seconds until the window has room again in full; the first hit was moments ago.
      expect(windows.hourly!.t).toBeGreaterThan(HOUR - 30);
      expect(windows.hourly!.t).toBeLessThanOrEqual(HOUR);
      expect(windows.daily!.t).toBeGreaterThan(DAY - 30);
      expect(windows.daily!.t).toBeLessThanOrEqual(DAY);
      expect(windows.burst!.t).toBeGreaterThan(30);
      expect(windows.burst!.t).toBeLessThanOrEqual(60);
      // X-RateLimit-*: the most restrictive window, which is burst (fewest remaining).
      expect(r.headers['x-ratelimit-limit']).toBe('3');
      expect(r.headers['x-ratelimit-remaining']).toBe(String(3 - i));
      const reset = Number(r.headers['x-ratelimit-reset']);
      expect(reset).toBeGreaterThanOrEqual(Math.floor(before / 1000) + 30);
      expect(reset).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 61);
    }

    const hitsBefore = upstream.hits;
    const limited = await send(p.url, '/transcribe', 'POST');
    expect(limited.status).toBe(429);
    expect(upstream.hits).toBe(hitsBefore);
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.headers['content-type']).toBe('application/json');
    expect(limited.text).toBe(
      `{"error":"Rate limit exceeded","limit":3,"window":"burst","retry_after":${retryAfter}}`,
    );
    expect(limited.headers['ratelimit-policy']).toBe(policy);
    expect(parseRateLimit(limited.headers.ratelimit!)).toMatchObject({
      hourly: { r: 1 },
      daily: { r: 3 },
      burst: { r: 0 },
    });
    expect(limited.headers['x-ratelimit-limit']).toBe('3');
    expect(limited.headers['x-ratelimit-remaining']).toBe('0');

    // A rejected request consumed nothing, in any window.
    const view = await getJson<{ windows: { name: string; remaining: number }[] }>(
      `${p.admin}/admin/limits?route=transcribe&key=127.0.0.1`,
    );
    expect(view.status).toBe(200);
    expect(view.body.windows.map((w) => [w.name, w.remaining])).toEqual([
      ['hourly', 1],
      ['daily', 3],
      ['burst', 0],
    ]);

    const m = await metrics(p.admin);
    expect(metricValue(m, 'rate_limit_requests_total', { endpoint: 'transcribe', decision: 'allowed' })).toBe(
      3,
    );
    expect(metricValue(m, 'rate_limit_requests_total', { endpoint: 'transcribe', decision: 'limited' })).toBe(
      1,
    );
    expect(metricValue(m, 'rate_limit_hits_total', { endpoint: 'transcribe' })).toBe(1);
    expect(
      metricValue(m, 'proxy_requests_total', { route: 'transcribe', upstream: 'app', status: '429' }),
    ).toBe(1);
  });

  it('refuses a declared body over max_body before it can use up any quota', async () => {
    const hitsBefore = upstream.hits;
    const r = await request(p.url + '/upload', { method: 'POST', body: Buffer.alloc(2048) });
    expect(r.statusCode).toBe(413);
    expect(await r.body.json()).toEqual({ error: 'Payload too large', max_body: 1024 });
    expect(upstream.hits).toBe(hitsBefore);
    const view = await getJson<{ windows: { name: string; remaining: number }[] }>(
      `${p.admin}/admin/limits?route=upload&key=127.0.0.1`,
    );
    expect(view.body.windows.map((w) => [w.name, w.remaining])).toEqual([
      ['hourly', 5],
      ['daily', 10],
    ]);
  });

  it('rejects once the hourly window is full, with Retry-After up to an hour', async () => {
    for (let i = 0; i < 3; i++) expect((await send(p.url, `/status/job-${i}`)).status).toBe(200);
    const limited = await send(p.url, '/status/job-9');
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(HOUR - 30);
    expect(retryAfter).toBeLessThanOrEqual(HOUR);
    expect(JSON.parse(limited.text)).toEqual({
      error: 'Rate limit exceeded',
      limit: 3,
      window: 'hourly',
      retry_after: retryAfter,
    });
    expect(limited.headers['ratelimit-policy']).toBe('"hourly";q=3;w=3600, "daily";q=10;w=86400');
    expect(limited.headers['x-ratelimit-limit']).toBe('3');
  });

  it('counts a header-keyed limit per header value, and by client IP without the header', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await send(p.url, '/v1/search', 'GET', { 'x-api-key': 'key-a' });
      expect(r.status).toBe(200);
      expect(r.headers['x-ratelimit-remaining']).toBe(String(1 - i));
    }
    expect((await send(p.url, '/v1/search', 'GET', { 'x-api-key': 'key-a' })).status).toBe(429);
    // Another key has its own budget; so does a client without a key (counted by IP).
    expect((await send(p.url, '/v1/search', 'GET', { 'x-api-key': 'key-b' })).status).toBe(200);
    const anon = await send(p.url, '/v1/search');
    expect(anon.status).toBe(200);
    expect(anon.headers['x-ratelimit-remaining']).toBe('1');

    const a = await getJson<{ key: string; windows: { name: string; remaining: number }[] }>(
      `${p.admin}/admin/limits?route=api&key=key-a`,
    );
    expect(a.body.key).toBe('key-a');
    expect(a.body.windows.find((w) => w.name === 'hourly')!.remaining).toBe(0);
    const b = await getJson<{ windows: { name: string; remaining: number }[] }>(
      `${p.admin}/admin/limits?route=api&key=key-b`,
    );
    expect(b.body.windows.find((w) => w.name === 'hourly')!.remaining).toBe(1);
  });

  it('shadow mode passes over-limit requests, with headers, and counts them as shadow_limited', async () => {
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof send>> | undefined;
    for (let i = 0; i < 3; i++) {
      last = await send(p.url, '/reports/weekly');
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 200]);
    expect(last!.headers['x-ratelimit-remaining']).toBe('0');
    expect(last!.headers['retry-after']).toBeUndefined();
    const m = await metrics(p.admin);
    expect(metricValue(m, 'rate_limit_requests_total', { endpoint: 'reports', decision: 'allowed' })).toBe(1);
    expect(
      metricValue(m, 'rate_limit_requests_total', { endpoint: 'reports', decision: 'shadow_limited' }),
    ).toBe(2);
    expect(metricValue(m, 'rate_limit_hits_total', { endpoint: 'reports' })).toBe(0);
  });

  it('forwards a route without limits with no limit headers', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await send(p.url, '/healthz');
      expect(r.status).toBe(200);
      for (const name of Object.keys(r.headers)) expect(name).not.toMatch(/ratelimit|retry-after/);
    }
  });

  it('answers 404 {"error":"No route"} for an unknown path or a method the route does not take', async () => {
    for (const [method, path] of [
      ['GET', '/nowhere'],
      ['GET', '/transcribe'],
      ['POST', '/healthz'],
    ] as const) {
      const r = await send(p.url, path, method);
      expect(r.status).toBe(404);
      expect(r.text).toBe('{"error":"No route"}');
    }
  });
});

describe('rate limits per route (memory store, manual clock)', () => {
  let upstream: TestUpstream;
  let p: TestProxy;
  const clock = new ManualClock(Date.UTC(2026, 1, 21, 10, 0, 0));

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy(
      {
        version: 1,
        upstreams: { app: { url: upstream.url } },
        routes: [{ name: 'r', match: { path: '/r' }, upstream: 'app', limits: { hourly: 2, daily: 3 } }],
      },
      { clock },
    );
  });

  afterAll(async () => {
    await p?.close();
    await upstream?.close();
  });

  it('keeps the daily window binding after the hourly one has rolled over', async () => {
    expect((await send(p.url, '/r')).status).toBe(200);
    expect((await send(p.url, '/r')).status).toBe(200);
    const hourly = await send(p.url, '/r');
    expect(hourly.status).toBe(429);
    expect(JSON.parse(hourly.text)).toMatchObject({ window: 'hourly', limit: 2, retry_after: HOUR });

    clock.advance(HOUR * 1000 + 1_000);
    const third = await send(p.url, '/r');
    expect(third.status).toBe(200);
    expect(parseRateLimit(third.headers.ratelimit!)).toEqual({
      hourly: { r: 1, t: HOUR },
      daily: { r: 0, t: DAY - HOUR - 1 },
    });
    // The daily window is now the most restrictive.
    expect(third.headers['x-ratelimit-limit']).toBe('3');
    expect(third.headers['x-ratelimit-remaining']).toBe('0');
    expect(third.headers['x-ratelimit-reset']).toBe(String(Date.UTC(2026, 1, 22, 10, 0, 0) / 1000));

    const daily = await send(p.url, '/r');
    expect(daily.status).toBe(429);
    expect(daily.headers['retry-after']).toBe(String(DAY - HOUR - 1));
    expect(daily.text).toBe(
      `{"error":"Rate limit exceeded","limit":3,"window":"daily","retry_after":${DAY - HOUR - 1}}`,
    );
  });
});
