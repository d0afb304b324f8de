// store.refusal_cache end to end: a proxy that has been refused by Redis for an identity answers its next
// requests 429 itself, without asking Redis, for at most a second; a reload that changes the route's
// limits starts without the remembered refusals. Without the setting every request asks Redis.
import type { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { getJson, type PolicyDoc, startTestProxy, type TestProxy, writePolicy } from '../../helpers/proxy.js';
import { deletePrefix, newRedis, REDIS_URL, uniquePrefix } from '../../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { waitFor } from '../../helpers/wait.js';

describe('store.refusal_cache', () => {
  let redis: Redis;
  let upstream: TestUpstream;
  let p: TestProxy | null = null;
  const prefixes: string[] = [];

  const policy = (prefix: string, refusalCache: boolean, hourly: number): PolicyDoc => ({
    version: 1,
    listen: '127.0.0.1:0',
    admin: { listen: '127.0.0.1:0' },
    store: {
      type: 'redis',
      url: REDIS_URL,
      prefix,
      timeout: '5s',
      on_error: 'deny',
      refusal_cache: refusalCache,
    },
    upstreams: { app: { url: upstream.url } },
    routes: [{ name: 'tight', match: { path: '/tight' }, upstream: 'app', limits: { hourly, daily: 100 } }],
  });
  const status = async () => {
    const r = await request(`${p!.url}/tight`);
    await r.body.dump();
    return r.statusCode;
  };
  /** Starts a proxy whose one identity (127.0.0.1) has just been refused by Redis. */
  async function refused(refusalCache: boolean): Promise<string> {
    const prefix = uniquePrefix('refusal-cache');
    prefixes.push(prefix);
    p = await startTestProxy(policy(prefix, refusalCache, 1));
    expect(await status()).toBe(200);
    expect(await status()).toBe(429);
    return prefix;
  }

  beforeAll(async () => {
    redis = newRedis();
    upstream = await startUpstream();
  });
  afterEach(async () => {
    await p?.close();
    p = null;
  });
  afterAll(async () => {
    for (const prefix of prefixes) await deletePrefix(redis, prefix);
    await redis.quit();
    await upstream.close();
  });

  it('off (the default): every request asks Redis, so counters deleted behind its back admit at once', async () => {
    const prefix = await refused(false);
    await deletePrefix(redis, prefix);
    expect(await status()).toBe(200);
  });

  it('on: the refusal is replayed without Redis (which would now admit) for at most a second', async () => {
    const prefix = await refused(true);
    await deletePrefix(redis, prefix);
    const started = performance.now();
    // Redis holds no counter, so only the proxy's own memory can answer 429 here.
    expect(await status()).toBe(429);
    expect((await redis.keys(`${prefix}*`)).length).toBe(0);
    await waitFor(async () => (await status()) === 200, { intervalMs: 50, what: 'the replay to end' });
    // Bounded by the cap (1 s), with slack for a loaded machine; not a performance figure.
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('on: a reload that changes the limits starts without the remembered refusals', async () => {
    const prefix = await refused(true);
    expect(await status()).toBe(429);
    await writePolicy(p!.file, policy(prefix, true, 5));
    expect(await getJson(`${p!.admin}/admin/reload`, 'POST')).toMatchObject({ status: 200 });
    expect(await status()).toBe(200);
  });
});
