// Fault 12: requests crafted to turn the proxy against the service it protects, sent as raw bytes to a
// proxy process. A request the proxy cannot forward unambiguously is the client's fault: it gets a 4xx,
// never reaches the upstream and never counts against the breaker. A trickling body holds no upstream
// connection. No spelling of a request (fragment, trailing slash, path parameter, HEAD, absolute form,
// duplicated key header) reaches a limited handler uncounted. An upgrade is admitted and rewritten
// exactly as a plain request is. SIGTERM ends the process within its bound whatever its sockets do.
import { rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProxy, getJson, metricValue, spawnProxy, tempDir, writePolicy } from '../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';
import { rawRequest, responseBody } from './lib/raw-http.js';
import { recordFault } from './lib/report.js';

const BODY_TIMEOUT_MS = 3_000;
const TRICKLERS = 300;
const THRESHOLD = 3;
const LIMIT = 5;

describe('fault 12: hostile requests', () => {
  let upstream: TestUpstream;
  let proxy: ChildProxy;
  let port: number;
  let dir: string;
  const agent = new Agent({ connections: 16 });
  const rows: string[] = [];

  beforeAll(async () => {
    upstream = await startUpstream();
    dir = await tempDir('faults-hostile-requests');
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, {
      version: 1,
      upstreams: {
        app: { url: upstream.url, breaker: { failure_threshold: THRESHOLD, timeout: '60s' } },
      },
      routes: [
        {
          name: 'search',
          match: { path: '/v1/search', methods: ['GET'] },
          upstream: 'app',
          limits: { hourly: LIMIT, daily: LIMIT },
        },
        {
          name: 'upload',
          match: { path: '/upload', methods: ['POST'] },
          upstream: 'app',
          max_body: '1mb',
          limits: { hourly: LIMIT, daily: LIMIT },
        },
        {
          name: 'keyed',
          match: { path: '/keyed' },
          upstream: 'app',
          limits: { key: 'header:X-API-Key', hourly: LIMIT, daily: LIMIT },
        },
        { name: 'ws', match: { path: '/ws' }, upstream: 'app', limits: { hourly: LIMIT, daily: LIMIT } },
        { name: 'open', match: { path: '/*' }, upstream: 'app' },
      ],
    });
    proxy = await spawnProxy(file, { FLOODGATE_BODY_TIMEOUT: `${BODY_TIMEOUT_MS}ms` });
    port = Number(new URL(proxy.url).port);
  });

  afterAll(async () => {
    await proxy?.kill();
    await agent.close();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (rows.length > 0) {
      await recordFault({
        fault:
          '12 Hostile requests: duplicate headers, trickling bodies, fragments and other spellings, spoofed upgrades',
        observed: rows.join('; '),
        lost: 'no forged request reached the upstream uncounted; the breaker never opened; no well-behaved request failed',
      });
    }
  });

  async function breakerState(): Promise<{ state: string; failure_count: number }> {
    const { body } = await getJson<Record<string, { state: string; failure_count: number }>>(
      `${proxy.admin}/admin/breakers`,
    );
    return body.app!;
  }

  async function get(path: string, headers: Record<string, string> = {}): Promise<number> {
    const r = await request(`${proxy.url}${path}`, { dispatcher: agent, headers });
    await r.body.dump();
    return r.statusCode;
  }

  it('answers duplicated singleton headers with 400, without reaching the upstream or its breaker', async () => {
    const hits = upstream.hits;
    const dupes = [
      'Host: a\r\nHost: b',
      'Content-Type: a/b\r\nContent-Type: c/d',
      'Authorization: x\r\nAuthorization: y',
    ];
    const statuses: number[] = [];
    // More than the breaker's threshold, twice over: once it would have counted them, it would be open.
    for (let i = 0; i < THRESHOLD * 2; i++) {
      for (const d of dupes)
        statuses.push(
          (await rawRequest(port, `GET /x HTTP/1.1\r\n${d}\r\nConnection: close\r\n\r\n`)).status,
        );
    }
    expect(new Set(statuses)).toEqual(new Set([400]));
    expect(upstream.hits).toBe(hits);
    expect(await breakerState()).toMatchObject({ state: 'CLOSED', failure_count: 0 });
    expect(await get('/x')).toBe(200);
    rows.push(
      `${statuses.length} requests with duplicated Host/Content-Type/Authorization: all 400, 0 reached the upstream, breaker CLOSED`,
    );
  });

  it('keeps Host against "Connection: Host", and refuses header padding that would push out its own headers', async () => {
    let r = await rawRequest(
      port,
      'GET /conn HTTP/1.1\r\nHost: client.example\r\nConnection: Host, close\r\n\r\n',
    );
    expect(r.status).toBe(200);
    expect(upstream.lastHeaders!.host).toBe('client.example');

    const padding = (n: number): string => Array.from({ length: n }, (_, i) => `X-Pad-${i}: p\r\n`).join('');
    r = await rawRequest(port, `GET /pad HTTP/1.1\r\nHost: a\r\nConnection: close\r\n${padding(1_500)}\r\n`);
    expect(r.status).toBe(431);
    r = await rawRequest(port, `GET /pad HTTP/1.1\r\nHost: a\r\nConnection: close\r\n${padding(90)}\r\n`);
    expect(r.status).toBe(200);
    expect(upstream.lastHeaders!['x-forwarded-for']).toBe('127.0.0.1');
    expect(upstream.lastHeaders!['x-request-id']).toBeTruthy();
  });

  it('refuses a fragment, and counts every spelling of a limited path against its route', async () => {
    const hits = upstream.hits;
    const fragments = await Promise.all(
      [1, 2, 3].map((i) =>
        rawRequest(port, `GET /v1/search#${i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`),
      ),
    );
    expect(fragments.map((f) => f.status)).toEqual([400, 400, 400]);
    expect(upstream.hits).toBe(hits);

    // Five spellings the upstream would route to /v1/search: together they use up the limit of 5.
    const spellings = ['/v1/search', '/v1/search/', '/v1/search;x', '/V1//search', '/v1/./search'];
    expect(await Promise.all(spellings.map((p) => get(p)))).toEqual([200, 200, 200, 200, 200]);
    const head = await request(`${proxy.url}/v1/search`, { method: 'HEAD', dispatcher: agent });
    await head.body.dump();
    const absolute = await rawRequest(
      port,
      'GET http://a/v1/search HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n',
    );
    const after = await Promise.all(spellings.map((p) => get(p)));
    expect([head.statusCode, absolute.status, ...after]).toEqual([429, 429, 429, 429, 429, 429, 429]);

    // The absolute form is routed by its path, and its authority stands in for Host.
    await rawRequest(
      port,
      'GET http://app.example/open/abs?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n',
    );
    expect(upstream.lastUrl).toBe('/open/abs?q=1');
    expect(upstream.lastHeaders!.host).toBe('app.example');
    rows.push(
      'fragment targets: 400, never forwarded; trailing slash, ;param, case, HEAD and absolute form: all counted (429 after the limit)',
    );
  });

  it('refuses a duplicated key header, and drops header names with underscores', async () => {
    const dup = await rawRequest(
      port,
      'GET /keyed HTTP/1.1\r\nHost: a\r\nX-API-Key: kA\r\nX-API-Key: other\r\nConnection: close\r\n\r\n',
    );
    expect(dup.status).toBe(400);
    const underscore = await rawRequest(
      port,
      'GET /keyed HTTP/1.1\r\nHost: a\r\nX_API_KEY: kB\r\nConnection: close\r\n\r\n',
    );
    expect(underscore.status).toBe(200);
    expect(upstream.lastHeaders!.x_api_key).toBeUndefined();
    rows.push('X-API-Key twice: 400; X_API_KEY: not forwarded');
  });

  it('admits and rewrites an upgrade exactly as a plain request', async () => {
    const spoof =
      'X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nX-Real-IP: 6.6.6.6\r\n' +
      'Forwarded: for=6.6.6.6\r\nX-Secret: s\r\n';
    const upgrades = upstream.upgrades;
    const upgrade = (): Promise<number> =>
      firstStatus(
        port,
        `GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X-Secret\r\nUpgrade: websocket\r\n${spoof}\r\n`,
      );
    expect(await upgrade()).toBe(101);
    const h = upstream.lastHeaders!;
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-host']).toBe('a');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-real-ip']).toBe('127.0.0.1');
    expect(h.forwarded).toBeUndefined();
    expect(h['x-secret']).toBeUndefined();
    for (let i = 1; i < LIMIT; i++) expect(await upgrade()).toBe(101);
    expect(upstream.upgrades - upgrades).toBe(LIMIT);
    const limited = await rawRequest(
      port,
      'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    );
    expect(limited.status).toBe(429);
    expect(JSON.parse(responseBody(limited.response)), limited.response).toMatchObject({
      error: 'Rate limit exceeded',
      limit: LIMIT,
    });
    const m = await (await request(`${proxy.admin}/metrics`)).body.text();
    expect(metricValue(m, 'rate_limit_requests_total', { endpoint: 'ws', decision: 'allowed' })).toBe(LIMIT);
    expect(metricValue(m, 'rate_limit_requests_total', { endpoint: 'ws', decision: 'limited' })).toBe(1);
    expect(metricValue(m, 'proxy_requests_total', { route: 'ws', upstream: 'app', status: '429' })).toBe(1);
    rows.push(
      `upgrade with spoofed X-Forwarded-*/X-Real-IP/Forwarded: rewritten as for plain requests; ${LIMIT} allowed then 429, in the metrics`,
    );
  });

  it('keeps answering other requests while 300 clients trickle bodies, and answers those 408', async () => {
    const hits = upstream.hits;
    const sockets: Socket[] = [];
    const answers: Promise<{ status: number; ms: number }>[] = [];
    for (let i = 0; i < TRICKLERS; i++) {
      const s = new Socket();
      sockets.push(s);
      answers.push(
        new Promise((resolve) => {
          const started = performance.now();
          let data = '';
          s.on('data', (d: Buffer) => {
            data += d.toString('latin1');
          });
          s.on('error', () => undefined);
          s.on('close', () =>
            resolve({
              status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0),
              ms: performance.now() - started,
            }),
          );
        }),
      );
      s.connect(port, '127.0.0.1', () =>
        s.write('POST /open/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nx'),
      );
    }
    // While all of them hold a connection to the proxy, ordinary requests to the same upstream answer.
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const at = performance.now();
      expect(await get(`/open/during-${i}`)).toBe(200);
      latencies.push(performance.now() - at);
    }
    // One more byte each, well inside the idle timeout: they are alive, just slow.
    for (const s of sockets) s.write('y');
    const results = await Promise.all(answers);
    const statuses = new Set(results.map((r) => r.status));
    expect(statuses).toEqual(new Set([408]));
    const slowest = Math.max(...results.map((r) => r.ms));
    expect(slowest).toBeLessThan(BODY_TIMEOUT_MS * 4);
    expect(upstream.hits - hits).toBe(20);
    expect(await breakerState()).toMatchObject({ state: 'CLOSED' });
    rows.push(
      `${TRICKLERS} clients trickling a 100 kB body: 0 upstream connections taken; 20 other requests meanwhile, max ${Math.round(Math.max(...latencies))} ms; all ${TRICKLERS} answered 408 within ${(slowest / 1000).toFixed(1)} s (body timeout ${BODY_TIMEOUT_MS / 1000} s)`,
    );
  });

  it('ends within its drain bound on SIGTERM, even with an open tunnel and a trickling body', async () => {
    const tunnel = new Socket();
    await new Promise<void>((resolve) => {
      tunnel.once('data', () => resolve());
      tunnel.connect(port, '127.0.0.1', () =>
        tunnel.write('GET /open/ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'),
      );
    });
    tunnel.on('error', () => undefined);
    // Node answers 100 Continue once the request is in the handler: the body is being read then.
    const trickler = new Socket();
    trickler.on('error', () => undefined);
    await new Promise<void>((resolve) => {
      trickler.once('data', () => resolve());
      trickler.connect(port, '127.0.0.1', () =>
        trickler.write(
          'POST /open/t HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n',
        ),
      );
    });
    const started = performance.now();
    proxy.child.kill('SIGTERM');
    const exit = await proxy.exited;
    const ms = performance.now() - started;
    tunnel.destroy();
    trickler.destroy();
    expect(exit.code).toBe(0);
    expect(ms).toBeLessThan(13_000);
    await waitFor(() => tunnel.destroyed);
    rows.push(`SIGTERM with an open tunnel and a trickling body: exit 0 after ${(ms / 1000).toFixed(1)} s`);
  });
});

/** The status line of the first bytes the server sends back on a fresh connection (a 101 stays open). */
function firstStatus(port: number, data: string): Promise<number> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.on('error', () => resolve(0));
    s.once('data', (d: Buffer) => {
      resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1] ?? 0));
      s.destroy();
    });
    s.connect(port, '127.0.0.1', () => s.write(data));
  });
}
