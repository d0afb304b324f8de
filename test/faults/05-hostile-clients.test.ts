// Fault 5: hostile clients against a proxy process, while well-behaved clients keep using it.
// Malformed requests, oversized headers and invalid header bytes get a 4xx (or a closed connection) and
// never reach the upstream; slowloris connections are closed once the headers timeout passes; 10,000
// spoofed X-Forwarded-For values from an untrusted peer are all one key; and no spelling of a path gets
// a request to a limited route without being counted. Throughout, the proxy stays up and the
// well-behaved clients get their 200s.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProxy, getJson, spawnProxy, tempDir, writePolicy } from '../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { formatCounts, type LoadRun, maxMs, startLoad, statusCounts } from './lib/load.js';
import { rawRequest, responseBody, slowloris } from './lib/raw-http.js';
import { recordFault } from './lib/report.js';

const HEADERS_TIMEOUT_MS = 2_000;
const SPOOFED = 10_000;
const SPOOF_LIMIT = 50;
const LIMITED_LIMIT = 1_000;

/**
 * The path the most lenient upstream could make of `target`: percent-decoded (encoded slashes and
 * backslashes included), backslashes as slashes, empty and dot segments resolved, case folded. If that
 * is under /limited/, the request was a request to the limited route, whatever the proxy thought.
 */
function lenientPath(target: string): string {
  let path = target.split('?')[0]!;
  try {
    path = decodeURIComponent(path);
  } catch {
    // undecodable: take it as it is
  }
  const out: string[] = [];
  for (const seg of path.replace(/\\/g, '/').split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}`.toLowerCase();
}

describe('fault 5: hostile clients', () => {
  let upstream: TestUpstream;
  let proxy: ChildProxy;
  let port: number;
  let dir: string;
  const agent = new Agent({ connections: 64 });
  const rows: string[] = [];
  let background: LoadRun;

  beforeAll(async () => {
    upstream = await startUpstream();
    dir = await tempDir('faults-hostile');
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, {
      version: 1,
      // Only 10.0.0.0/8 is trusted: the loopback peer is not, so its X-Forwarded-For is ignored.
      client_ip: { trusted_proxies: ['10.0.0.0/8'] },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          name: 'limited',
          match: { path: '/limited/*' },
          upstream: 'app',
          limits: { hourly: LIMITED_LIMIT, daily: LIMITED_LIMIT },
        },
        {
          name: 'spoof',
          match: { path: '/spoof' },
          upstream: 'app',
          limits: { hourly: SPOOF_LIMIT, daily: SPOOF_LIMIT },
        },
        { name: 'good', match: { path: '/good/*' }, upstream: 'app' },
        { name: 'open', match: { path: '/*' }, upstream: 'app' },
      ],
    });
    proxy = await spawnProxy(file, { FLOODGATE_HEADERS_TIMEOUT: `${HEADERS_TIMEOUT_MS}ms` });
    port = Number(new URL(proxy.url).port);
    // Well-behaved clients all along.
    background = startLoad({
      concurrency: 4,
      durationMs: 120_000,
      maxRequests: 1_000_000,
      send: async (worker) => {
        const r = await request(`${proxy.url}/good/${worker}`, { dispatcher: agent });
        await r.body.dump();
        return { status: r.statusCode };
      },
    });
  });

  afterAll(async () => {
    const samples = await background?.end();
    await proxy?.kill();
    await agent.close();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (samples && rows.length > 0) {
      await recordFault({
        fault:
          '5 Hostile clients: malformed HTTP, huge and invalid headers, slowloris, spoofed XFF, path tricks',
        observed: `${rows.join('; ')}; meanwhile ${samples.length} well-behaved requests: ${formatCounts(statusCounts(samples))}, max ${Math.round(maxMs(samples))} ms`,
        lost: `${samples.filter((s) => s.status !== 200).length} well-behaved requests failed; the proxy never went down`,
      });
    }
  });

  async function alive(): Promise<void> {
    expect(proxy.child.exitCode).toBeNull();
    expect((await getJson(`${proxy.admin}/healthz`)).status).toBe(200);
    const r = await request(`${proxy.url}/good/check`, { dispatcher: agent });
    await r.body.dump();
    expect(r.statusCode).toBe(200);
  }

  it('answers malformed requests, oversized headers and invalid header bytes with 4xx, never forwarding them', async () => {
    const hitsBefore = upstream.hits;
    const big = 'a'.repeat(20_000);
    const cases: { name: string; data: string | Buffer; expect: number[] }[] = [
      { name: 'garbage', data: 'GARBAGE\r\n\r\n', expect: [400] },
      {
        name: 'binary noise',
        data: Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]),
        expect: [400],
      },
      { name: 'bad version', data: 'GET /x HTTP/9.9\r\nHost: a\r\n\r\n', expect: [400, 505] },
      { name: 'space in target', data: 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n', expect: [400] },
      { name: 'NUL in target', data: 'GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n', expect: [400] },
      {
        name: 'CL and TE together (smuggling)',
        data: 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        expect: [400],
      },
      {
        name: 'two Content-Lengths',
        data: 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
        expect: [400],
      },
      {
        name: 'header too large',
        data: `GET /x HTTP/1.1\r\nHost: a\r\nX-Big: ${big}\r\n\r\n`,
        expect: [431],
      },
      {
        name: 'too many headers',
        data: `GET /x HTTP/1.1\r\nHost: a\r\n${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'v'.repeat(60)}\r\n`).join('')}\r\n`,
        expect: [431],
      },
      { name: 'target too long', data: `GET /${big} HTTP/1.1\r\nHost: a\r\n\r\n`, expect: [431, 414, 400] },
      {
        name: 'space in header name',
        data: 'GET /x HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n',
        expect: [400],
      },
      {
        name: 'NUL in header value',
        data: 'GET /x HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n',
        expect: [400],
      },
      {
        name: 'bare CR in header value',
        data: 'GET /x HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n',
        expect: [400],
      },
      { name: 'bare LF line end', data: 'GET /x HTTP/1.1\nHost: a\nX-A: b\n\n', expect: [400] },
      {
        name: 'obs-fold continuation',
        data: 'GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n',
        expect: [400],
      },
      {
        name: 'DEL in header value',
        data: 'GET /x HTTP/1.1\r\nHost: a\r\nX-A: a\x7fb\r\n\r\n',
        expect: [400],
      },
      { name: 'no Host (HTTP/1.1)', data: 'GET /x HTTP/1.1\r\n\r\n', expect: [400] },
      {
        name: 'bad chunk size',
        data: 'POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n\r\n',
        expect: [400],
      },
    ];
    const results: string[] = [];
    for (const c of cases) {
      const r = await rawRequest(port, c.data);
      results.push(`${c.name}=${r.status}`);
      expect(c.expect, `${c.name}: ${JSON.stringify(r.response.slice(0, 200))}`).toContain(r.status);
      await alive();
    }
    // None of it reached the upstream (alive() sends one good request per case, and so does the background).
    expect(upstream.lastRawHeaders?.some((h) => /[\0\r\n\x7f]/.test(h)) ?? false).toBe(false);
    expect(upstream.hits - hitsBefore).toBeGreaterThanOrEqual(cases.length);

    // Bytes HTTP allows (obs-text) pass as they are.
    const latin = await rawRequest(
      port,
      Buffer.from(
        'GET /open/latin HTTP/1.1\r\nHost: a\r\nX-Latin: caf\xe9\xff\r\nConnection: close\r\n\r\n',
        'latin1',
      ),
    );
    expect(latin.status).toBe(200);
    rows.push(
      `${cases.length} malformed/oversized/invalid-byte requests → ${[...new Set(cases.map((_, i) => results[i]!.split('=')[1]))].join('/')}, none forwarded`,
    );
  });

  it('closes slowloris connections once the headers timeout has passed', async () => {
    const started = performance.now();
    const attackers = await Promise.all(
      Array.from({ length: 50 }, () =>
        slowloris(port, { intervalMs: 300, boundMs: HEADERS_TIMEOUT_MS + 8_000, maxLines: 100 }),
      ),
    );
    const closedAfter = attackers.map((a) => a.closedAfterMs);
    expect(closedAfter.every((ms) => ms !== null)).toBe(true);
    const times = closedAfter as number[];
    // Not before the timeout, and not long after (Node checks every connectionsCheckingInterval).
    expect(Math.min(...times)).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
    expect(Math.max(...times)).toBeLessThan(HEADERS_TIMEOUT_MS + 2_500);
    for (const a of attackers) expect(a.response === '' || a.response.startsWith('HTTP/1.1 408')).toBe(true);
    await alive();
    rows.push(
      `50 slowloris connections closed after ${Math.round(Math.min(...times))}–${Math.round(Math.max(...times))} ms (headers timeout ${HEADERS_TIMEOUT_MS}) in ${Math.round(performance.now() - started)} ms`,
    );
  });

  it(`counts ${SPOOFED} spoofed X-Forwarded-For values from an untrusted peer as one key`, async () => {
    const hitsBefore = upstream.hits;
    const run = startLoad({
      concurrency: 50,
      durationMs: 60_000,
      maxRequests: SPOOFED,
      send: async (_w, i) => {
        const spoofed = `${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}.${(i * 7) & 255}`;
        const r = await request(`${proxy.url}/spoof`, {
          dispatcher: agent,
          headers: { 'x-forwarded-for': `${spoofed}, 10.1.2.3` },
        });
        await r.body.dump();
        return { status: r.statusCode };
      },
    });
    const samples = await run.done;
    expect(samples).toHaveLength(SPOOFED);
    expect(statusCounts(samples)).toEqual({ 200: SPOOF_LIMIT, 429: SPOOFED - SPOOF_LIMIT });
    expect(upstream.hits - hitsBefore).toBeGreaterThanOrEqual(SPOOF_LIMIT);
    const mine = await getJson<{ windows: { remaining: number }[] }>(
      `${proxy.admin}/admin/limits?route=spoof&key=127.0.0.1`,
    );
    expect(mine.body.windows.map((w) => w.remaining)).toEqual([0, 0]);
    for (const spoofed of ['0.0.0.0', '0.0.1.7', '0.39.15.105']) {
      const view = await getJson<{ windows: { remaining: number }[] }>(
        `${proxy.admin}/admin/limits?route=spoof&key=${spoofed}`,
      );
      expect(view.body.windows.map((w) => w.remaining)).toEqual([SPOOF_LIMIT, SPOOF_LIMIT]);
    }
    rows.push(
      `${SPOOFED} distinct spoofed XFF → ${formatCounts(statusCounts(samples))} (one key: 127.0.0.1)`,
    );
  });

  it('is not fooled by path spellings into forwarding a limited request uncounted', async () => {
    const tricks = [
      '/limited/a',
      '/LIMITED/a',
      '/Limited/A',
      '//limited/a',
      '/limited//a',
      '///limited///a',
      '/./limited/a',
      '/open/../limited/a',
      '/open/./../limited/a',
      '/open/x/../../limited/a',
      '/open/%2e%2e/limited/a',
      '/open/%2E%2E/limited/a',
      '/open/.%2e/limited/a',
      '/%6cimited/a',
      '/%6C%69MITED/a',
      '/limited%2Fa',
      '/limited%2fa',
      '/open%2F..%2Flimited/a',
      '/open/..%2Flimited/a',
      '/open/..%2flimited%2fa',
      '/open/..%5Climited/a',
      '/open\\..\\limited\\a',
      '/limited/a?x=/../open',
      '/open/%2e%2e%2flimited/a',
    ];
    const outcomes: { trick: string; status: number; counted: boolean; forwarded: string | null }[] = [];
    for (const trick of tricks) {
      const r = await rawRequest(port, `GET ${trick} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
      const counted = /ratelimit-policy: "hourly";q=1000/i.test(r.response);
      // The upstream answers with the path it received.
      const forwarded = /x-upstream: yes/i.test(r.response)
        ? (JSON.parse(responseBody(r.response)) as { path: string }).path
        : null;
      outcomes.push({ trick, status: r.status, counted, forwarded });
    }
    const uncounted = outcomes.filter(
      (o) => o.forwarded !== null && !o.counted && lenientPath(o.forwarded).startsWith('/limited/'),
    );
    expect(uncounted, 'requests to the limited route that were forwarded without being counted').toEqual([]);
    // Every spelling the proxy forwarded as a limited request, it counted.
    for (const o of outcomes) {
      if (o.forwarded !== null && lenientPath(o.forwarded).startsWith('/limited/'))
        expect(o.counted).toBe(true);
      expect([200, 400, 404]).toContain(o.status);
    }
    await alive();
    rows.push(
      `${tricks.length} path spellings → ${outcomes.filter((o) => o.counted).length} counted on the limited route, ` +
        `${outcomes.filter((o) => o.status === 400).length} refused 400, ${outcomes.filter((o) => o.forwarded !== null && !o.counted).length} forwarded elsewhere (harmless), 0 uncounted`,
    );
  });
});
