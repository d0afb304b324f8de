// Plans, allowlists and composite keys through a real proxy and a real upstream on loopback, with raw
// requests wherever the spelling is the point: a client from 127.0.0.1 (a trusted proxy) or 127.0.0.2
// (not one), paths and query strings spelled every way a client could, repeated headers and parameters.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getJson,
  metrics,
  metricValue,
  startTestProxy,
  type TestProxy,
  writePolicy,
} from '../../helpers/proxy.js';
import { deletePrefix, newRedis, REDIS_URL, uniquePrefix } from '../../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { type RawAnswer, rawRequest } from '../admin/raw-http.js';

const TRUSTED = '127.0.0.1';
const UNTRUSTED = '127.0.0.2';

/** One request as raw bytes from `from`: exactly this target and these header lines. */
function raw(port: number, from: string, target: string, headers: string[] = []): Promise<RawAnswer> {
  return rawRequest(port, [`GET ${target} HTTP/1.1`, 'Host: floodgate.test', ...headers], '', from);
}

/** The statuses of `n` requests sent one after another. */
async function statuses(n: number, send: () => Promise<RawAnswer>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await send()).status);
  return out;
}

const RATE_HEADERS = ['ratelimit', 'ratelimit-policy', 'x-ratelimit-limit', 'x-ratelimit-remaining'];

function routes() {
  return [
    {
      name: 'plans',
      match: { path: '/plans/*' },
      upstream: 'app',
      limits: {
        key: 'header:X-API-Key',
        hourly: 2,
        plans: { by: 'header:X-Plan', values: { pro: { hourly: 4 } } },
      },
    },
    {
      name: 'bykey',
      match: { path: '/bykey/*' },
      upstream: 'app',
      limits: {
        key: 'header:X-API-Key',
        hourly: 1,
        plans: {
          by: 'key',
          values: { 'k-pro': { hourly: 3, windows: [{ name: 'burst', limit: 3, per: '1m' }] } },
        },
        allowlist: { keys: ['k-health'] },
      },
    },
    {
      name: 'composite',
      match: { path: '/comp/*' },
      upstream: 'app',
      limits: { key: ['header:X-API-Key', 'ip'], hourly: 1 },
    },
    {
      name: 'pair',
      match: { path: '/pair/*' },
      upstream: 'app',
      limits: { key: ['header:X-A', 'header:X-B'], hourly: 1 },
    },
    { name: 'users', match: { path: '/v1/users/*' }, upstream: 'app', limits: { key: 'path:3', hourly: 1 } },
    { name: 'search', match: { path: '/search' }, upstream: 'app', limits: { key: 'query:user', hourly: 1 } },
    {
      name: 'internal',
      match: { path: '/internal/*' },
      upstream: 'app',
      limits: { hourly: 1, allowlist: { ips: [UNTRUSTED] } },
    },
    { name: 'open', match: { path: '/open/*' }, upstream: 'app', limits: { hourly: 1 } },
  ];
}

describe('plans, allowlists and composite keys (memory store)', () => {
  let upstream: TestUpstream;
  let p: TestProxy;
  let port: number;

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy({
      version: 1,
      client_ip: { trusted_proxies: [TRUSTED] },
      allowlist: { ips: ['10.0.0.0/8', 'fd00::/8'] },
      upstreams: { app: { url: upstream.url } },
      routes: routes(),
    });
    port = Number(new URL(p.url).port);
  });

  afterAll(async () => {
    await p?.close();
    await upstream?.close();
  });

  it('a header-chosen plan has its own windows and its own counter; an unknown plan gets the default', async () => {
    const send = (key: string, plan?: string) =>
      raw(port, TRUSTED, '/plans/x', [`X-API-Key: ${key}`, ...(plan ? [`X-Plan: ${plan}`] : [])]);

    const pro = await send('k-a', 'pro');
    expect(pro.status).toBe(200);
    expect(pro.headers['ratelimit-policy']).toBe('"hourly";q=4;w=3600');
    expect(pro.headers['x-ratelimit-remaining']).toBe('3');
    expect(await statuses(4, () => send('k-a', 'pro'))).toEqual([200, 200, 200, 429]);

    // The same key on the default plan starts from its own counter, not from pro's.
    const free = await send('k-a');
    expect(free.status).toBe(200);
    expect(free.headers['ratelimit-policy']).toBe('"hourly";q=2;w=3600');
    expect(free.headers['x-ratelimit-remaining']).toBe('1');
    // Not a listed plan (values match exactly: PRO is not pro): the default windows and counter.
    const gold = await send('k-a', 'gold');
    expect(gold.status).toBe(200);
    expect(gold.headers['ratelimit-policy']).toBe('"hourly";q=2;w=3600');
    expect(gold.headers['x-ratelimit-remaining']).toBe('0');
    const upper = await send('k-a', 'PRO');
    expect(upper.status).toBe(429);
    expect(JSON.parse(upper.body)).toMatchObject({
      error: 'Rate limit exceeded',
      limit: 2,
      window: 'hourly',
    });
  });

  it('a client’s own plan header buys it nothing: from an untrusted peer, the default plan', async () => {
    const own = await raw(port, UNTRUSTED, '/plans/x', ['X-API-Key: k-own', 'X-Plan: pro']);
    expect(own.status).toBe(200);
    expect(own.headers['ratelimit-policy']).toBe('"hourly";q=2;w=3600');
    expect(own.headers['x-ratelimit-remaining']).toBe('1');
    const again = await raw(port, UNTRUSTED, '/plans/x', ['X-API-Key: k-own', 'X-Plan: pro']);
    expect(again.headers['x-ratelimit-remaining']).toBe('0');
    expect((await raw(port, UNTRUSTED, '/plans/x', ['X-API-Key: k-own', 'X-Plan: pro'])).status).toBe(429);
  });

  it('a second X-Plan (or X-API-Key) header is the client’s fault: 400 before any quota is spent', async () => {
    const hits = upstream.hits;
    for (const headers of [
      ['X-API-Key: k-dup', 'X-Plan: pro', 'x-plan: free'],
      ['X-API-Key: k-dup', 'X-API-KEY: k-other'],
    ]) {
      const r = await raw(port, TRUSTED, '/plans/x', headers);
      expect(r.status).toBe(400);
      expect(r.headers['content-type']).toBe('application/json');
      expect(JSON.parse(r.body)).toMatchObject({ error: 'Bad request' });
      expect(r.headers.ratelimit).toBeUndefined();
    }
    expect(upstream.hits).toBe(hits);
    const view = await getJson<{ plan: string | null; windows: { remaining: number }[] }>(
      `${p.admin}/admin/limits?route=plans&key=k-dup&plan=pro`,
    );
    expect(view.body.plan).toBe('pro');
    expect(view.body.windows[0]!.remaining).toBe(4);
  });

  it('plans by key: the key itself picks its windows; an allowlisted key is never limited and gets no headers', async () => {
    const send = (key: string) => raw(port, TRUSTED, '/bykey/x', [`X-API-Key: ${key}`]);
    const first = await send('k-pro');
    expect(first.headers['ratelimit-policy']).toBe('"hourly";q=3;w=3600, "burst";q=3;w=60');
    expect(await statuses(3, () => send('k-pro'))).toEqual([200, 200, 429]);
    expect(await statuses(2, () => send('k-other'))).toEqual([200, 429]);

    for (let i = 0; i < 5; i++) {
      const r = await send('k-health');
      expect(r.status).toBe(200);
      for (const h of RATE_HEADERS) expect(r.headers[h]).toBeUndefined();
    }
    // Keys are exact header values: a near miss is an ordinary key (surrounding spaces are no part of
    // a header value, so 'k-health ' is k-health).
    expect(await statuses(2, () => send('K-HEALTH'))).toEqual([200, 429]);
    expect((await send(' k-health ')).status).toBe(200);
  });

  it('an allowlisted address is never limited: directly, or through a trusted X-Forwarded-For', async () => {
    // The route's own allowlist, the TCP peer itself.
    for (let i = 0; i < 4; i++) {
      const r = await raw(port, UNTRUSTED, '/internal/x');
      expect(r.status).toBe(200);
      for (const h of RATE_HEADERS) expect(r.headers[h]).toBeUndefined();
    }
    expect(await statuses(2, () => raw(port, TRUSTED, '/internal/x'))).toEqual([200, 429]);

    // The top-level allowlist, for a client behind the trusted proxy 127.0.0.1.
    for (let i = 0; i < 4; i++) {
      const r = await raw(port, TRUSTED, '/open/x', ['X-Forwarded-For: 10.1.2.3']);
      expect(r.status).toBe(200);
      for (const h of RATE_HEADERS) expect(r.headers[h]).toBeUndefined();
    }
    // An untrusted peer cannot claim an allowlisted address...
    expect(await statuses(2, () => raw(port, UNTRUSTED, '/open/x', ['X-Forwarded-For: 10.1.2.3']))).toEqual([
      200, 429,
    ]);
    // ...nor can a client behind the trusted proxy, by prepending one: the hop the proxy saw decides.
    expect(
      await statuses(2, () => raw(port, TRUSTED, '/open/x', ['X-Forwarded-For: 10.1.2.3, 198.51.100.7'])),
    ).toEqual([200, 429]);

    const text = await metrics(p.admin);
    expect(
      metricValue(text, 'rate_limit_requests_total', { endpoint: 'open', decision: 'allowlisted' }),
    ).toBe(4);
    expect(
      metricValue(text, 'rate_limit_requests_total', { endpoint: 'internal', decision: 'allowlisted' }),
    ).toBe(4);
  });

  it('a composite key counts each combination apart', async () => {
    const send = (from: string, key?: string) =>
      raw(port, from, '/comp/x', key === undefined ? [] : [`X-API-Key: ${key}`]);
    // One key from two clients, and two keys from one client: four counters.
    expect((await send(TRUSTED, 'k1')).status).toBe(200);
    expect((await send(UNTRUSTED, 'k1')).status).toBe(200);
    expect((await send(TRUSTED, 'k2')).status).toBe(200);
    expect((await send(TRUSTED, 'k1')).status).toBe(429);
    // Without the header: an empty part, still apart per client.
    expect(await statuses(2, () => send(TRUSTED))).toEqual([200, 429]);
    expect((await send(UNTRUSTED)).status).toBe(200);

    // Values that would collide under a separator ("a:b" + "c" against "a" + "b:c") stay apart.
    const pair = (a: string, b: string) => raw(port, TRUSTED, '/pair/x', [`X-A: ${a}`, `X-B: ${b}`]);
    expect((await pair('a:b', 'c')).status).toBe(200);
    expect((await pair('a', 'b:c')).status).toBe(200);
    expect((await pair('1:a', '')).status).toBe(200);
    expect((await pair('1:a', '')).status).toBe(429);
  });

  it('path:3 counts the normalized segment: case, escapes, parameters, dot segments and a trailing slash are one', async () => {
    const get = (target: string) => raw(port, TRUSTED, target);
    expect((await get('/v1/users/ABC')).status).toBe(200);
    for (const spelling of [
      '/v1/users/abc',
      '/v1/users/%41BC',
      '/v1/users/%61%62%63',
      '/v1/users/aBc/',
      '/v1/users/abc;jsessionid=1',
      '/v1/users/x/../abc',
      '/V1/Users/./ABC/orders',
      '//v1//users//abc',
    ]) {
      const r = await get(spelling);
      expect([spelling, r.status]).toEqual([spelling, 429]);
    }
    expect((await get('/v1/users/other')).status).toBe(200);
    // A reserved character and its escape are one value too.
    expect((await get('/v1/users/a!')).status).toBe(200);
    expect((await get('/v1/users/a%21')).status).toBe(429);
    // An encoded slash cannot be read one way only: refused before it is counted.
    const slash = await get('/v1/users/a%2Fb');
    expect(slash.status).toBe(400);
    expect(slash.headers['content-type']).toBe('application/json');
  });

  it('query:user counts the decoded value; a repeated parameter is a 400 that costs nothing', async () => {
    const get = (query: string) => raw(port, TRUSTED, `/search?${query}`);
    expect((await get('user=bob')).status).toBe(200);
    expect((await get('user=b%6Fb')).status).toBe(429);
    expect((await get('q=1&user=bob&page=2')).status).toBe(429);
    // Values keep their case.
    expect((await get('user=Bob')).status).toBe(200);
    // '+' is a space, as form decoding has it.
    expect((await get('user=a+b')).status).toBe(200);
    expect((await get('user=a%20b')).status).toBe(429);

    const hits = upstream.hits;
    for (const query of ['user=carol&user=dave', 'user=carol&us%65r=dave', 'user=&user=carol']) {
      const r = await get(query);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body)).toEqual({
        error: 'Bad request',
        detail: 'more than one user query parameter',
      });
    }
    expect(upstream.hits).toBe(hits);
    // carol was never counted.
    expect((await get('user=carol')).status).toBe(200);

    // Absent and empty count alike (one shared counter for requests without a user).
    expect((await raw(port, TRUSTED, '/search')).status).toBe(200);
    expect((await get('user=')).status).toBe(429);
    expect((await get('USER=x')).status).toBe(429);
  });

  it('/admin/limits takes one key= per part and plan=; a wrong count is a 400', async () => {
    const limits = (q: string) => getJson<Record<string, unknown>>(`${p.admin}/admin/limits?${q}`);

    const pro = await limits('route=plans&key=k-a&plan=pro');
    expect(pro.status).toBe(200);
    expect(pro.body).toMatchObject({
      route: 'plans',
      key: 'k-a',
      plan: 'pro',
      windows: [{ name: 'hourly', limit: 4, remaining: 0 }],
    });
    const free = await limits('route=plans&key=k-a');
    expect(free.body).toMatchObject({ plan: null, windows: [{ limit: 2, remaining: 0 }] });
    expect((await limits('route=plans&key=k-a&plan=gold')).status).toBe(400);

    const byKey = await limits('route=bykey&key=k-pro');
    expect(byKey.body).toMatchObject({
      plan: 'k-pro',
      windows: [{ name: 'hourly', limit: 3, remaining: 0 }, { name: 'burst' }],
    });
    const refused = await limits('route=bykey&key=k-pro&plan=k-pro');
    expect(refused).toEqual({
      status: 400,
      body: { error: 'this route chooses its plan by its key; leave plan out', route: 'bykey' },
    });

    const comp = await limits(`route=composite&key=k1&key=${TRUSTED}`);
    expect(comp.body).toMatchObject({ key: ['k1', TRUSTED], plan: null, windows: [{ remaining: 0 }] });
    expect((await limits(`route=composite&key=k1&key=${UNTRUSTED}`)).body).toMatchObject({
      windows: [{ remaining: 0 }],
    });
    expect((await limits('route=composite&key=k9&key=127.0.0.9')).body).toMatchObject({
      windows: [{ remaining: 1 }],
    });
    expect(await limits('route=composite&key=k1')).toEqual({
      status: 400,
      body: {
        error: "this route's key has 2 parts (header:x-api-key, ip): give one key= per part, in that order",
        route: 'composite',
      },
    });

    // A path segment is looked up as a client could spell it.
    expect((await limits('route=users&key=%2541BC')).body).toMatchObject({ windows: [{ remaining: 0 }] });
    expect((await limits('route=search&key=carol')).body).toMatchObject({ windows: [{ remaining: 0 }] });
  });

  it('a reload that adds a plan keeps the counts of the plans it leaves unchanged', async () => {
    const send = (plan?: string) =>
      raw(port, TRUSTED, '/plans/x', ['X-API-Key: k-a', ...(plan ? [`X-Plan: ${plan}`] : [])]);
    expect((await send()).status).toBe(429);
    expect((await send('pro')).status).toBe(429);
    const next = routes();
    (next[0]!.limits as { plans: { values: Record<string, unknown> } }).plans.values.team = { hourly: 3 };
    await writePolicy(p.file, {
      version: 1,
      client_ip: { trusted_proxies: [TRUSTED] },
      allowlist: { ips: ['10.0.0.0/8', 'fd00::/8'] },
      upstreams: { app: { url: upstream.url } },
      routes: next,
    });
    const reloaded = await getJson<{ ok: boolean; version: number }>(`${p.admin}/admin/reload`, 'POST');
    expect(reloaded.body).toMatchObject({ ok: true, version: 2 });
    expect((await send()).status).toBe(429);
    expect((await send('pro')).status).toBe(429);
    const team = await send('team');
    expect(team.status).toBe(200);
    expect(team.headers['ratelimit-policy']).toBe('"hourly";q=3;w=3600');
  });

  it('/admin/config shows allowlist keys and key-chosen plan values redacted; logs never carry a key', async () => {
    const cfg = await getJson<{
      policy: { allowlist: unknown; routes: { name: string; limits: unknown }[] };
    }>(`${p.admin}/admin/config`);
    const byName = Object.fromEntries(cfg.body.policy.routes.map((r) => [r.name, r.limits]));
    expect(byName.bykey).toMatchObject({
      allowlist: { keys: ['***'] },
      plans: {
        by: { type: 'key' },
        values: [{ value: '***', windows: [{ name: 'hourly', limit: 3 }, { name: 'burst' }] }],
      },
    });
    expect(byName.plans).toMatchObject({
      plans: { by: { type: 'header', name: 'x-plan' }, values: [{ value: 'pro' }, { value: 'team' }] },
    });
    expect(cfg.body.policy.allowlist).toMatchObject({ ips: [{ cidr: '10.0.0.0/8' }, { cidr: 'fd00::/8' }] });
    const text = JSON.stringify(cfg.body);
    expect(text).not.toContain('k-health');
    expect(text).not.toContain('k-pro');

    const logs = JSON.stringify(p.logs);
    expect(logs).toContain('rate limit exceeded');
    // Keys long enough not to turn up by chance inside a hashed identifier or a request id.
    for (const secret of ['k-pro', 'k-other', 'k-health', 'k-dup']) expect(logs).not.toContain(secret);
  });
});

describe('plans on the Redis store', () => {
  const prefix = uniquePrefix('plans-keys');
  let redis: Redis;
  let upstream: TestUpstream;
  let p: TestProxy;
  let port: number;

  beforeAll(async () => {
    redis = newRedis();
    upstream = await startUpstream();
    p = await startTestProxy({
      version: 1,
      store: { type: 'redis', url: REDIS_URL, prefix, timeout: '2s', on_error: 'deny' },
      client_ip: { trusted_proxies: [TRUSTED] },
      upstreams: { app: { url: upstream.url } },
      routes: routes(),
    });
    port = Number(new URL(p.url).port);
  });

  afterAll(async () => {
    await p?.close();
    await upstream?.close();
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  it('pro, default and an unknown plan count apart by plan, under keys of their own', async () => {
    const send = (plan?: string) =>
      raw(port, TRUSTED, '/plans/x', ['X-API-Key: k-redis', ...(plan ? [`X-Plan: ${plan}`] : [])]);
    expect(await statuses(5, () => send('pro'))).toEqual([200, 200, 200, 200, 429]);
    expect(await statuses(1, () => send())).toEqual([200]);
    expect(await statuses(2, () => send('gold'))).toEqual([200, 429]);

    // Two plans' counters, under two scopes of the route; neither key carries the raw API key.
    const keys = await redis.keys(`${prefix}*`);
    const scopes = new Set(keys.map((k) => /plans:([0-9a-f]{12}):/.exec(k)?.[1]).filter(Boolean));
    expect(scopes.size).toBe(2);
    expect(keys.join(' ')).not.toContain('k-redis');
  });
});
