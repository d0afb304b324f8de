// Two proxy processes sharing one Redis enforce one limit together, exactly: a burst of concurrent
// requests split across both admits precisely `limit` of them.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProxy, getJson, spawnProxy, tempDir, writePolicy } from '../../helpers/proxy.js';
import { deletePrefix, newRedis, REDIS_URL, uniquePrefix } from '../../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

const LIMIT = 50;
const REQUESTS = 200;

describe('two proxy processes sharing Redis', () => {
  const prefix = uniquePrefix('proxy-shared');
  let redis: Redis;
  let upstream: TestUpstream;
  let dir: string;
  let proxies: ChildProxy[] = [];
  const agent = new Agent({ connections: 100 });

  beforeAll(async () => {
    redis = newRedis();
    upstream = await startUpstream();
    dir = await tempDir('shared');
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, {
      version: 1,
      // A generous store timeout and deny: under a loaded machine a slow Redis call must not fall back
      // to a local count (which would admit more) but show up as a 503 the assertions catch.
      store: { type: 'redis', url: REDIS_URL, prefix, timeout: '5s', on_error: 'deny' },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          name: 'shared',
          match: { path: '/shared' },
          upstream: 'app',
          limits: { hourly: LIMIT, daily: LIMIT },
        },
      ],
    });
    proxies = await Promise.all([spawnProxy(file), spawnProxy(file)]);
  });

  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.kill()));
    await agent.close();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  it(`admits exactly ${LIMIT} of ${REQUESTS} concurrent requests split across both`, async () => {
    const statuses = await Promise.all(
      Array.from({ length: REQUESTS }, async (_, i) => {
        const r = await request(`${proxies[i % 2]!.url}/shared`, { dispatcher: agent });
        await r.body.dump();
        return { status: r.statusCode, via: i % 2 };
      }),
    );
    const count = (status: number, via?: number) =>
      statuses.filter((s) => s.status === status && (via === undefined || s.via === via)).length;
    expect(count(200)).toBe(LIMIT);
    expect(count(429)).toBe(REQUESTS - LIMIT);
    // Both processes admitted some: the limit was shared, not enforced by one of them alone.
    expect(count(200, 0)).toBeGreaterThan(0);
    expect(count(200, 1)).toBeGreaterThan(0);
    expect(upstream.hits).toBe(LIMIT);

    // Both see the same counter.
    for (const p of proxies) {
      const view = await getJson<{ windows: { name: string; remaining: number }[] }>(
        `${p.admin}/admin/limits?route=shared&key=127.0.0.1`,
      );
      expect(view.body.windows.map((w) => w.remaining)).toEqual([0, 0]);
    }
    const keys = await redis.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(await redis.zcard(key)).toBe(LIMIT);
  });
});
