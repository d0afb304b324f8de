// A request's cost through a real proxy, a real upstream and each store (memory, Redis): a fixed cost
// counts N in every window, a header cost is believed only from a trusted proxy, and a bad cost header
// is the client's 400, refused before anything is counted or reaches the upstream and its breaker.
// Requests go out as raw bytes from a chosen loopback address: 127.0.0.1 is the trusted proxy,
// 127.0.0.2 a client talking to Floodgate directly.
import { connect } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { deletePrefix, newRedis, REDIS_URL, uniquePrefix } from '../../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

const TRUSTED = '127.0.0.1';
const UNTRUSTED = '127.0.0.2';

interface Answer {
  readonly status: number;
  /** Lower-cased names. */
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Sends `head` (request line and header lines, without the blank line) from `from`; reads to close. */
function raw(url: string, from: string, head: string): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), localAddress: from });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [top = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = top.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') });
    });
    socket.write(`${head}\r\nHost: floodgate.test\r\nConnection: close\r\n\r\n`, 'latin1');
  });
}

const get = (url: string, from: string, path: string, ...headers: string[]) =>
  raw(url, from, [`GET ${path} HTTP/1.1`, ...headers].join('\r\n'));

/** The `r` of one window in a RateLimit header: `"hourly";r=5;t=3600` → 5. */
function remaining(a: Answer, window = 'hourly'): number {
  const m = new RegExp(`"${window}";r=(\\d+)`).exec(a.headers.ratelimit ?? '');
  if (!m) throw new Error(`no ${window} in RateLimit: ${JSON.stringify(a.headers)}`);
  return Number(m[1]);
}

describe.each(['memory', 'redis'] as const)('request cost (%s store)', (storeType) => {
  const prefix = uniquePrefix('proxy-cost');
  let redis: Redis | undefined;
  let upstream: TestUpstream;
  let p: TestProxy;

  beforeAll(async () => {
    upstream = await startUpstream();
    if (storeType === 'redis') redis = newRedis();
    p = await startTestProxy({
      version: 1,
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      store:
        storeType === 'redis'
          ? { type: 'redis', url: REDIS_URL, prefix, timeout: '2s', on_error: 'deny' }
          : { type: 'memory' },
      client_ip: { trusted_proxies: [`${TRUSTED}/32`] },
      upstreams: { app: { url: upstream.url } },
      routes: [
        { name: 'upload', match: { path: '/upload' }, upstream: 'app', limits: { hourly: 10, cost: 5 } },
        {
          name: 'api',
          match: { path: '/v1/*' },
          upstream: 'app',
          limits: {
            hourly: 100,
            windows: [{ name: 'minute', limit: 60, per: '1m' }],
            cost: { header: 'X-Request-Cost', default: 2, max: 50 },
          },
        },
        {
          name: 'keyed',
          match: { path: '/k/*' },
          upstream: 'app',
          limits: { key: 'header:X-API-Key', hourly: 10, cost: { header: 'X-Request-Cost', max: 10 } },
        },
      ],
    });
  });

  afterAll(async () => {
    await p?.close();
    await upstream?.close();
    if (redis) {
      await deletePrefix(redis, prefix);
      await redis.quit();
    }
  });

  it('a fixed cost of 5 on a limit of 10: two requests pass, the third is refused', async () => {
    const first = await get(p.url, UNTRUSTED, '/upload');
    const second = await get(p.url, UNTRUSTED, '/upload');
    const third = await get(p.url, UNTRUSTED, '/upload');
    expect([first.status, second.status, third.status]).toEqual([200, 200, 429]);
    expect(first.headers.ratelimit).toBe('"hourly";r=5;t=3600');
    expect(first.headers['x-ratelimit-remaining']).toBe('5');
    expect(second.headers.ratelimit).toBe('"hourly";r=0;t=3600');
    expect(third.headers.ratelimit).toMatch(/^"hourly";r=0;t=36\d\d$/);
    expect(Number(third.headers['retry-after'])).toBeGreaterThan(3_500);
    expect(JSON.parse(third.body)).toMatchObject({
      error: 'Rate limit exceeded',
      limit: 10,
      window: 'hourly',
    });
    // A cost header means nothing to a route with a fixed cost, even from a trusted proxy.
    const trusted = await get(p.url, TRUSTED, '/upload', 'X-Request-Cost: 1');
    expect(trusted.status).toBe(200);
    expect(remaining(trusted)).toBe(5);
  });

  it('a trusted proxy sets the cost; the windows count it, and a cost that does not fit is refused', async () => {
    const path = '/v1/transcribe';
    let a = await get(p.url, TRUSTED, path, 'X-Forwarded-For: 198.51.100.7', 'X-Request-Cost: 30');
    expect(a.status).toBe(200);
    expect(a.headers.ratelimit).toBe('"hourly";r=70;t=3600, "minute";r=30;t=60');
    a = await get(p.url, TRUSTED, path, 'X-Forwarded-For: 198.51.100.7', 'x-request-cost: 25');
    expect(a.headers.ratelimit).toBe('"hourly";r=45;t=3600, "minute";r=5;t=60');
    // Six units asked, five left in the minute: refused, and nothing counted.
    a = await get(p.url, TRUSTED, path, 'X-Forwarded-For: 198.51.100.7', 'X-Request-Cost: 6');
    expect(a.status).toBe(429);
    expect(a.headers.ratelimit).toBe('"hourly";r=45;t=3600, "minute";r=5;t=60');
    expect(JSON.parse(a.body)).toMatchObject({ limit: 60, window: 'minute' });
    // Without the header: the default, 2.
    a = await get(p.url, TRUSTED, path, 'X-Forwarded-For: 198.51.100.7');
    expect(a.status).toBe(200);
    expect(a.headers.ratelimit).toBe('"hourly";r=43;t=3600, "minute";r=3;t=60');
    // Whitespace around a field value is not part of it (RFC 9110 §5.5): the value is "3".
    a = await get(p.url, TRUSTED, path, 'X-Forwarded-For: 198.51.100.7', 'X-Request-Cost: \t 3 \t');
    expect(a.status).toBe(200);
    expect(a.headers.ratelimit).toBe('"hourly";r=40;t=3600, "minute";r=0;t=60');
  });

  it("a client's own cost header is ignored: it pays the default, whatever it sends", async () => {
    const path = '/v1/other';
    const sent = [
      'X-Request-Cost: 1',
      'X-Request-Cost: 50',
      'X-Request-Cost: 0',
      'X-Request-Cost: -5',
      'X-Request-Cost: 1e3',
      'X-Request-Cost: lots',
    ];
    const rs: number[] = [];
    for (const header of sent) {
      const a = await get(p.url, UNTRUSTED, path, header);
      expect(a.status, header).toBe(200);
      rs.push(remaining(a, 'minute'));
    }
    expect(rs).toEqual([58, 56, 54, 52, 50, 48]);
  });

  it('a bad cost from a trusted proxy is a 400 naming the header: nothing counted, nothing forwarded', async () => {
    const path = '/v1/bad';
    const xff = 'X-Forwarded-For: 203.0.113.9';
    const before = upstream.hits;
    const bad = [
      '0',
      '-1',
      '+5',
      '05',
      '5.0',
      '1e3',
      '0x10',
      '5, 5',
      '5 5',
      '5\t5',
      '51',
      '99999999999999999999',
      'five',
      '',
      '\u00bd',
      '\xef\xbc\x95', // a fullwidth 5, as UTF-8 bytes
    ];
    for (const value of bad) {
      const a = await get(p.url, TRUSTED, path, xff, `X-Request-Cost: ${value}`);
      expect(a.status, JSON.stringify(value)).toBe(400);
      expect(a.headers['content-type']).toBe('application/json');
      expect(JSON.parse(a.body)).toEqual({
        error: 'Bad request',
        detail: 'x-request-cost must be a whole number from 1 to 50',
      });
      expect(a.headers.ratelimit).toBeUndefined();
    }
    // Two copies: refused with the duplicate-header check, from anyone.
    for (const from of [TRUSTED, UNTRUSTED]) {
      const a = await get(p.url, from, path, xff, 'X-Request-Cost: 1', 'x-request-cost: 1');
      expect(a.status).toBe(400);
      expect(JSON.parse(a.body)).toEqual({
        error: 'Bad request',
        detail: 'more than one x-request-cost header',
      });
    }
    expect(upstream.hits).toBe(before);
    const ok = await get(p.url, TRUSTED, path, xff, 'X-Request-Cost: 50');
    expect(ok.status).toBe(200);
    expect(ok.headers.ratelimit).toBe('"hourly";r=50;t=3600, "minute";r=10;t=60');
    const breakers = (
      await getJson<Record<string, { state: string; failure_count: number }>>(`${p.admin}/admin/breakers`)
    ).body;
    expect(breakers.app).toMatchObject({ state: 'CLOSED', failure_count: 0 });
  });

  it('a route keyed by a header refuses a second copy of its key and of its cost header', async () => {
    const one = await get(p.url, TRUSTED, '/k/a', 'X-API-Key: k1', 'X-Request-Cost: 10');
    expect(one.status).toBe(200);
    expect(remaining(one)).toBe(0);
    expect((await get(p.url, TRUSTED, '/k/a', 'X-API-Key: k2', 'X-Request-Cost: 10')).status).toBe(200);
    expect((await get(p.url, TRUSTED, '/k/a', 'X-API-Key: k1', 'X-Request-Cost: 1')).status).toBe(429);
    const twoKeys = await get(p.url, TRUSTED, '/k/a', 'X-API-Key: k3', 'X-API-Key: k4');
    expect(JSON.parse(twoKeys.body)).toEqual({
      error: 'Bad request',
      detail: 'more than one X-API-Key header',
    });
    const twoCosts = await get(
      p.url,
      TRUSTED,
      '/k/a',
      'X-API-Key: k3',
      'X-Request-Cost: 1',
      'X-Request-Cost: 2',
    );
    expect(twoCosts.status).toBe(400);
    expect(JSON.parse(twoCosts.body)).toEqual({
      error: 'Bad request',
      detail: 'more than one X-Request-Cost header',
    });
  });
});
