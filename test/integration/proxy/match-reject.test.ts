// Routing by Host and by header, and a route's configurable rejection, through a real proxy on
// loopback with raw bytes: the spellings a client could use to move a request to another route, the
// duplicates that must be refused before any quota, and the exact answers each client_headers mode and
// rejection gives.
import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, metrics, metricValue, startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

interface RawAnswer {
  readonly status: number;
  readonly statusLine: string;
  /** Lower-cased names; repeated headers joined with ', '. */
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Sends `head` (CRLF lines, without the final blank line) and reads the whole answer. */
function raw(url: string, head: string[]): Promise<RawAnswer> {
  const port = Number(new URL(url).port);
  return new Promise((resolve, reject) => {
    const s = new Socket();
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
      }
      resolve({ status: Number(statusLine.split(' ')[1]), statusLine, headers, body: text.slice(end + 4) });
    });
    s.connect(port, '127.0.0.1', () => s.write(`${head.join('\r\n')}\r\n\r\n`));
  });
}

/** An HTTP/1.1 GET with Connection: close and the given header lines. */
const get = (url: string, target: string, ...lines: string[]) =>
  raw(url, [`GET ${target} HTTP/1.1`, ...lines, 'Connection: close']);

/** The route a limited answer came from: its one window is named after it (RateLimit-Policy). */
function routeOf(a: RawAnswer): string {
  if (a.status === 404) return '404';
  if (a.status === 400) return '400';
  return /^"([^"]+)"/.exec(a.headers['ratelimit-policy'] ?? '')?.[1] ?? `status ${a.status}`;
}

const RATE_LIMIT_HEADERS = [
  'ratelimit-policy',
  'ratelimit',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
];
const present = (a: RawAnswer) => RATE_LIMIT_HEADERS.filter((h) => h in a.headers);

let upstream: TestUpstream;

beforeAll(async () => {
  upstream = await startUpstream();
});

afterAll(async () => {
  await upstream?.close();
});

describe('matching by Host and by header', () => {
  let proxy: TestProxy;
  const windowOf = (name: string) => ({ windows: [{ name, limit: 1000, per: '1h' }] });

  beforeAll(async () => {
    proxy = await startTestProxy({
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          name: 'acme',
          match: { path: '/v1/*', host: 'api.example.com', headers: { 'X-Tenant': 'acme' } },
          upstream: 'app',
          limits: windowOf('acme'),
        },
        {
          name: 'wild',
          match: { path: '/v1/*', host: '*.example.com' },
          upstream: 'app',
          limits: windowOf('wild'),
        },
        {
          name: 'env',
          match: { path: '/v1/*', headers: { 'X-Env': ['prod', 'staging'] } },
          upstream: 'app',
          limits: windowOf('env'),
        },
      ],
    });
  });

  afterAll(async () => {
    await proxy?.close();
  });

  it('takes every spelling of the host, and no look-alike', async () => {
    const cases: [string[], string][] = [
      [['Host: api.example.com', 'X-Tenant: acme'], 'acme'],
      [['Host: API.EXAMPLE.COM.', 'X-Tenant: acme'], 'acme'],
      [['Host: api.example.com:8080', 'X-Tenant: acme'], 'acme'],
      [['host: Api.Example.Com.:443', 'x-tenant: acme'], 'acme'],
      [['Host: api.example.com.evil.com', 'X-Tenant: acme'], '404'],
      [['Host: evil.api.example.com', 'X-Tenant: acme'], 'wild'],
      [['Host: example.com', 'X-Tenant: acme'], '404'],
      [['Host: xexample.com'], '404'],
      [['Host: api.example.com..', 'X-Tenant: acme'], '404'],
      [['Host: api.example.com:80:80', 'X-Tenant: acme'], '404'],
    ];
    const got = await Promise.all(cases.map(([lines]) => get(proxy.url, '/v1/items', ...lines)));
    expect(got.map(routeOf)).toEqual(cases.map(([, route]) => route));
  });

  it('compares header values exactly, after the spaces and tabs node:http trims; names in any case', async () => {
    const cases: [string[], string][] = [
      [['Host: api.example.com', 'X-Tenant: acme \t '], 'acme'],
      [['Host: api.example.com', 'X-TENANT:acme'], 'acme'],
      [['Host: api.example.com', 'X-Tenant: ACME'], 'wild'],
      [['Host: api.example.com', 'X-Tenant: acme2'], 'wild'],
      [['Host: api.example.com', 'X-Tenant: '], 'wild'],
      [['Host: other.test', 'X-Env: staging'], 'env'],
      [['Host: other.test', 'X-Env: prod,staging'], '404'],
      [['Host: other.test', 'X-Env: dev'], '404'],
    ];
    const got = await Promise.all(cases.map(([lines]) => get(proxy.url, '/v1/items', ...lines)));
    expect(got.map(routeOf)).toEqual(cases.map(([, route]) => route));
  });

  it('compares the host the upstream will receive: an absolute-form authority wins over Host', async () => {
    const a = await get(
      proxy.url,
      'http://api.example.com:8080/v1/items',
      'Host: other.test',
      'X-Tenant: acme',
    );
    expect(routeOf(a)).toBe('acme');
    expect(upstream.lastHeaders!.host).toBe('api.example.com:8080');
    const b = await get(proxy.url, 'http://other.test/v1/items', 'Host: api.example.com', 'X-Tenant: acme');
    expect(b.status).toBe(404);
  });

  it('a request matching no route is 404 "No route"; HTTP/1.0 without Host matches no host', async () => {
    const none = await raw(proxy.url, ['GET /v1/items HTTP/1.0']);
    expect(none.statusLine).toBe('HTTP/1.1 404 Not Found');
    expect(none.body).toBe('{"error":"No route"}');
    const byHeader = await raw(proxy.url, ['GET /v1/items HTTP/1.0', 'X-Env: prod']);
    expect(routeOf(byHeader)).toBe('env');
  });

  it('refuses a repeated Host or match header with 400 before routing, counting nothing', async () => {
    const fresh = ['Host: api.example.com', 'X-Tenant: acme'];
    const before = await get(proxy.url, '/v1/dup', ...fresh);
    const remaining = /r=(\d+)/.exec(before.headers.ratelimit!)![1];
    const hits = upstream.hits;
    const dups = await Promise.all([
      get(proxy.url, '/v1/dup', 'Host: api.example.com', 'X-Tenant: acme', 'x-tenant: acme'),
      get(proxy.url, '/v1/dup', 'Host: api.example.com', 'X-Tenant: acme', 'X-Tenant: other'),
      // A repeat of a header only another route compares, and one on a request no route would take.
      get(proxy.url, '/v1/dup', ...fresh, 'X-Env: prod', 'X-Env: prod'),
      get(proxy.url, '/nowhere', 'Host: a.test', 'X-Env: prod', 'X-ENV: dev'),
      get(proxy.url, '/v1/dup', 'Host: api.example.com', 'Host: evil.test', 'X-Tenant: acme'),
    ]);
    expect(dups.map((d) => [d.status, d.headers['content-type'], d.headers.connection])).toEqual(
      dups.map(() => [400, 'application/json', 'close']),
    );
    expect(dups.map((d) => d.body)).toEqual([
      '{"error":"Bad request","detail":"more than one x-tenant header"}',
      '{"error":"Bad request","detail":"more than one X-Tenant header"}',
      '{"error":"Bad request","detail":"more than one X-Env header"}',
      '{"error":"Bad request","detail":"more than one X-ENV header"}',
      '{"error":"Bad request","detail":"more than one Host header"}',
    ]);
    expect(upstream.hits).toBe(hits);
    const after = await get(proxy.url, '/v1/dup', ...fresh);
    expect(/r=(\d+)/.exec(after.headers.ratelimit!)![1]).toBe(String(Number(remaining) - 1));
  });
});

describe('the rejection and client_headers', () => {
  let proxy: TestProxy;
  const once = { hourly: 1 };

  beforeAll(async () => {
    proxy = await startTestProxy({
      upstreams: {
        app: { url: upstream.url },
        flaky: { url: upstream.url, breaker: { failure_threshold: 1, failure_statuses: [503] } },
      },
      routes: [
        {
          name: 'custom',
          match: { path: '/custom' },
          upstream: 'app',
          limits: {
            ...once,
            client_headers: 'ietf',
            rejection: {
              status: 403,
              body: {
                error: 'quota exhausted',
                plan: 'free',
                retry_in: '{{retry_after}}',
                limit: '{{limit}}',
                detail: '{{route}}: {{limit}} per {{window}}',
              },
              headers: { 'X-Quota-Reason': '{{window}}', 'Cache-Control': 'no-store' },
            },
          },
        },
        {
          name: 'legacy',
          match: { path: '/legacy' },
          upstream: 'app',
          limits: { ...once, client_headers: 'legacy' },
        },
        {
          name: 'none',
          match: { path: '/none' },
          upstream: 'app',
          limits: { ...once, client_headers: 'none' },
        },
        { name: 'default', match: { path: '/default' }, upstream: 'app', limits: once },
        {
          name: 'flaky',
          match: { path: '/flaky' },
          upstream: 'flaky',
          limits: { ...once, rejection: { status: 503 } },
        },
        {
          name: 'shadow',
          match: { path: '/shadow' },
          upstream: 'app',
          limits: { ...once, shadow: true, client_headers: 'legacy', rejection: { status: 403 } },
        },
      ],
    });
  });

  afterAll(async () => {
    await proxy?.close();
  });

  it('default: 429, both header sets, Retry-After, and the body byte for byte as before', async () => {
    const ok = await get(proxy.url, '/default', 'Host: a');
    expect(ok.status).toBe(200);
    expect(present(ok)).toEqual(RATE_LIMIT_HEADERS);
    const no = await get(proxy.url, '/default', 'Host: a');
    expect(no.statusLine).toBe('HTTP/1.1 429 Too Many Requests');
    expect(present(no)).toEqual(RATE_LIMIT_HEADERS);
    const wait = no.headers['retry-after']!;
    expect(Number(wait)).toBeGreaterThan(3500);
    expect(no.headers['content-type']).toBe('application/json');
    expect(no.body).toBe(`{"error":"Rate limit exceeded","limit":1,"window":"hourly","retry_after":${wait}}`);
  });

  it('a custom rejection: its status, body template and headers; ietf headers only', async () => {
    const ok = await get(proxy.url, '/custom', 'Host: a');
    expect(ok.status).toBe(200);
    expect(present(ok)).toEqual(['ratelimit-policy', 'ratelimit']);
    expect(ok.headers['x-quota-reason']).toBeUndefined();
    const no = await get(proxy.url, '/custom', 'Host: a');
    expect(no.statusLine).toBe('HTTP/1.1 403 Forbidden');
    expect(present(no)).toEqual(['ratelimit-policy', 'ratelimit']);
    const wait = no.headers['retry-after']!;
    expect(no.headers).toMatchObject({
      'x-quota-reason': 'hourly',
      'cache-control': 'no-store',
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(no.body)),
    });
    expect(no.body).toBe(
      `{"error":"quota exhausted","plan":"free","retry_in":${wait},"limit":1,"detail":"custom: 1 per hourly"}`,
    );
  });

  it('legacy sends the X-RateLimit-* trio only; none sends no rate limit header, but Retry-After on a refusal', async () => {
    const [okLegacy, noLegacy] = [
      await get(proxy.url, '/legacy', 'Host: a'),
      await get(proxy.url, '/legacy', 'Host: a'),
    ];
    expect([okLegacy.status, noLegacy.status]).toEqual([200, 429]);
    expect(present(okLegacy)).toEqual(['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']);
    expect(present(noLegacy)).toEqual(['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']);
    expect(noLegacy.headers['x-ratelimit-remaining']).toBe('0');

    const [okNone, noNone] = [
      await get(proxy.url, '/none', 'Host: a'),
      await get(proxy.url, '/none', 'Host: a'),
    ];
    expect([okNone.status, noNone.status]).toEqual([200, 429]);
    expect(present(okNone)).toEqual([]);
    expect(present(noNone)).toEqual([]);
    expect(Number(noNone.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('shadow mode forwards what it would refuse, with its client headers and no rejection', async () => {
    const answers = [await get(proxy.url, '/shadow', 'Host: a'), await get(proxy.url, '/shadow', 'Host: a')];
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(answers[1]!.headers['x-ratelimit-remaining']).toBe('0');
    expect(answers[1]!.headers['retry-after']).toBeUndefined();
  });

  it('a rejection status the breaker counts as a failure never reaches the breaker; metrics record it', async () => {
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await get(proxy.url, '/flaky', 'Host: a'));
    expect(answers.map((a) => a.status)).toEqual([200, 503, 503, 503]);
    expect(answers[1]!.body).toMatch(
      /^\{"error":"Rate limit exceeded","limit":1,"window":"hourly","retry_after":\d+\}$/,
    );
    const { body } = await getJson<Record<string, { state: string; failure_count: number }>>(
      `${proxy.admin}/admin/breakers`,
    );
    expect(body.flaky).toMatchObject({ state: 'CLOSED', failure_count: 0 });
    const text = await metrics(proxy.admin);
    expect(
      metricValue(text, 'proxy_requests_total', { route: 'flaky', upstream: 'flaky', status: '503' }),
    ).toBe(3);
    expect(metricValue(text, 'rate_limit_hits_total', { endpoint: 'flaky' })).toBe(3);
    expect(
      metricValue(text, 'proxy_requests_total', { route: 'custom', upstream: 'app', status: '403' }),
    ).toBe(1);
  });

  it('an upgrade refused by its limits (the quota spent above) gets the same custom answer', async () => {
    const no = await raw(proxy.url, [
      'GET /custom HTTP/1.1',
      'Host: a',
      'Connection: Upgrade',
      'Upgrade: websocket',
    ]);
    expect(no.statusLine).toBe('HTTP/1.1 403 Forbidden');
    expect(no.headers['x-quota-reason']).toBe('hourly');
    expect(JSON.parse(no.body)).toMatchObject({ error: 'quota exhausted', limit: 1 });
  });
});
