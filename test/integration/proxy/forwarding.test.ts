// What the proxy does to a request on its way through: X-Forwarded-* and X-Request-Id, hop-by-hop
// headers dropped both ways, X-Forwarded-For believed only from trusted proxies (also for the limit key),
// 502 and 504 answers, canonical paths (no spelling escapes a limit), and WebSocket-style upgrades.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Socket } from 'node:net';
import { Client, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { freePort } from '../../helpers/redis-server.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { waitFor } from '../../helpers/wait.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function send(url: string, headers: Record<string, string> = {}) {
  const r = await request(url, { headers });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers as Record<string, string | undefined>, text };
}

/** A raw TCP client: the only way to send exactly the bytes a test means. */
class RawClient {
  private readonly socket = new Socket();
  private received = Buffer.alloc(0);
  closed = false;

  async connect(port: number): Promise<void> {
    this.socket.on('data', (d: Buffer) => {
      this.received = Buffer.concat([this.received, d]);
    });
    this.socket.on('close', () => {
      this.closed = true;
    });
    this.socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.connect(port, '127.0.0.1', () => resolve());
    });
  }

  write(data: string): void {
    this.socket.write(data);
  }

  /** Waits until the received bytes contain `needle`; returns everything received so far. */
  async until(needle: string): Promise<string> {
    await waitFor(() => this.received.includes(needle) || this.closed, { what: JSON.stringify(needle) });
    return this.received.toString();
  }

  take(): string {
    const s = this.received.toString();
    this.received = Buffer.alloc(0);
    return s;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

describe('forwarding', () => {
  let upstream: TestUpstream;
  let slow: TestUpstream;
  let untrusting: TestProxy;
  let trusting: TestProxy;

  const policy = (upstreamUrl: string, slowUrl: string, downUrl: string, trusted: string[]) => ({
    version: 1,
    client_ip: { trusted_proxies: trusted },
    upstreams: {
      app: { url: upstreamUrl },
      slow: { url: slowUrl, timeouts: { connect: '1s', response: '300ms', idle: '1s' } },
      down: { url: downUrl, timeouts: { connect: '1s', response: '1s', idle: '1s' } },
    },
    routes: [
      {
        name: 'transcribe',
        match: { path: '/transcribe', methods: ['POST'] },
        upstream: 'app',
        limits: { hourly: 4, daily: 10 },
      },
      {
        name: 'ws',
        match: { path: '/ws', methods: ['GET'] },
        upstream: 'app',
        limits: { hourly: 2, daily: 2 },
      },
      { name: 'keyed', match: { path: '/keyed' }, upstream: 'app', limits: { hourly: 2, daily: 10 } },
      { name: 'slow', match: { path: '/slow' }, upstream: 'slow' },
      { name: 'down', match: { path: '/down' }, upstream: 'down' },
      { name: 'open', match: { path: '/open/*' }, upstream: 'app' },
    ],
  });

  beforeAll(async () => {
    upstream = await startUpstream();
    slow = await startUpstream();
    slow.mode = { kind: 'slow', delayMs: 5_000 };
    const downUrl = `http://127.0.0.1:${await freePort()}`;
    untrusting = await startTestProxy(policy(upstream.url, slow.url, downUrl, []));
    trusting = await startTestProxy(policy(upstream.url, slow.url, downUrl, ['127.0.0.1/32']));
  });

  afterAll(async () => {
    await untrusting?.close();
    await trusting?.close();
    await upstream?.close();
    await slow?.close();
  });

  it('sets X-Forwarded-For/Proto/Host and X-Request-Id, keeping a given request id', async () => {
    const r = await send(`${untrusting.url}/open/a?q=1`);
    expect(r.status).toBe(200);
    const h = upstream.lastHeaders!;
    expect(upstream.lastUrl).toBe('/open/a?q=1');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe(new URL(untrusting.url).host);
    expect(h['x-request-id']).toMatch(UUID);
    const firstId = h['x-request-id'];
    await send(`${untrusting.url}/open/a`);
    expect(upstream.lastHeaders!['x-request-id']).not.toBe(firstId);

    await send(`${untrusting.url}/open/a`, { 'x-request-id': 'req-123' });
    expect(upstream.lastHeaders!['x-request-id']).toBe('req-123');
  });

  it('ignores X-Forwarded-* from an untrusted peer and extends them from a trusted one', async () => {
    const spoof = {
      'x-forwarded-for': '198.51.100.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'evil.example',
    };
    await send(`${untrusting.url}/open/a`, spoof);
    let h = upstream.lastHeaders!;
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe(new URL(untrusting.url).host);

    await send(`${trusting.url}/open/a`, spoof);
    h = upstream.lastHeaders!;
    expect(h['x-forwarded-for']).toBe('198.51.100.7, 127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('https');
    expect(h['x-forwarded-host']).toBe('evil.example');
  });

  it('keys limits by X-Forwarded-For only when the peer is a trusted proxy', async () => {
    // Untrusted: rotating a spoofed X-Forwarded-For does not buy a new budget.
    const spoofed = await Promise.all(
      ['203.0.113.1', '203.0.113.2', '203.0.113.3'].map(async (ip) => {
        const r = await send(`${untrusting.url}/keyed`, { 'x-forwarded-for': ip });
        return r.status;
      }),
    );
    expect(spoofed.sort()).toEqual([200, 200, 429]);
    const peer = await getJson<{ windows: { name: string; remaining: number }[] }>(
      `${untrusting.admin}/admin/limits?route=keyed&key=127.0.0.1`,
    );
    expect(peer.body.windows[0]).toMatchObject({ name: 'hourly', remaining: 0 });

    // Trusted: each client behind the proxy has its own budget, and the peer's is untouched.
    const statuses: number[] = [];
    for (const ip of ['203.0.113.1', '203.0.113.1', '203.0.113.1', '203.0.113.2']) {
      statuses.push((await send(`${trusting.url}/keyed`, { 'x-forwarded-for': ip })).status);
    }
    expect(statuses).toEqual([200, 200, 429, 200]);
    // Entries a client prepends are not believed: the rightmost untrusted hop is the client.
    expect(
      (await send(`${trusting.url}/keyed`, { 'x-forwarded-for': '203.0.113.1, 203.0.113.9' })).status,
    ).toBe(200);
    const view = async (key: string) =>
      (
        await getJson<{ windows: { name: string; remaining: number }[] }>(
          `${trusting.admin}/admin/limits?route=keyed&key=${key}`,
        )
      ).body.windows[0]!.remaining;
    expect(await view('203.0.113.1')).toBe(0);
    expect(await view('203.0.113.2')).toBe(1);
    expect(await view('203.0.113.9')).toBe(1);
    expect(await view('127.0.0.1')).toBe(2);
  });

  it('drops hop-by-hop headers, including those the Connection header lists, both ways', async () => {
    upstream.mode = {
      kind: 'custom',
      handle: (_req, res) => {
        res.writeHead(200, {
          connection: 'keep-alive, x-up-hop',
          'x-up-hop': 'secret',
          'proxy-authenticate': 'Basic',
          'x-end-to-end': 'yes',
        });
        res.end('ok');
      },
    };
    try {
      // node:http, not undici: undici refuses to send Connection tokens and Keep-Alive itself.
      const { status, headers } = await new Promise<{ status: number; headers: IncomingHttpHeaders }>(
        (resolve, reject) => {
          const req = httpRequest(`${untrusting.url}/open/hop`, {
            agent: false,
            headers: {
              connection: 'keep-alive, x-client-hop',
              'x-client-hop': 'secret',
              'keep-alive': 'timeout=5',
              te: 'trailers',
              'proxy-authorization': 'Basic Zm9vOmJhcg==',
              'proxy-connection': 'keep-alive',
              'x-end-to-end': 'yes',
            },
          });
          req.on('response', (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
          });
          req.on('error', reject);
          req.end();
        },
      );
      expect(status).toBe(200);
      const seen = upstream.lastHeaders!;
      expect(seen['x-end-to-end']).toBe('yes');
      for (const name of ['x-client-hop', 'keep-alive', 'te', 'proxy-authorization', 'proxy-connection']) {
        expect(seen[name], name).toBeUndefined();
      }
      expect(seen.connection ?? 'keep-alive').toBe('keep-alive');
      expect(headers['x-end-to-end']).toBe('yes');
      expect(headers['x-up-hop']).toBeUndefined();
      expect(headers['proxy-authenticate']).toBeUndefined();
      expect(headers.connection ?? '').not.toMatch(/x-up-hop/i);
    } finally {
      upstream.mode = { kind: 'ok' };
    }
  });

  it('answers 502 when the upstream is unreachable and 504 when it is too slow, and counts both', async () => {
    const down = await send(`${untrusting.url}/down`);
    expect(down.status).toBe(502);
    expect(down.text).toBe('{"error":"Bad gateway","upstream":"down"}');

    const started = Date.now();
    const timedOut = await send(`${untrusting.url}/slow`);
    expect(timedOut.status).toBe(504);
    expect(timedOut.text).toBe('{"error":"Gateway timeout","upstream":"slow"}');
    // The response timeout (300 ms) answered, not the upstream (5 s).
    expect(Date.now() - started).toBeLessThan(4_000);

    const b = await getJson<Record<string, { failure_count: number }>>(`${untrusting.admin}/admin/breakers`);
    expect(b.body.down!.failure_count).toBe(1);
    expect(b.body.slow!.failure_count).toBe(1);
  });

  it('routes and limits every spelling of a path as its canonical form', async () => {
    const client = new Client(untrusting.url);
    try {
      const spellings = ['/transcribe', '/a/../transcribe', '//transcribe', '/%74ranscribe', '/TRANSCRIBE'];
      const results: { status: number; remaining: string | undefined; upstreamUrl: string | null }[] = [];
      for (const path of spellings) {
        const before = upstream.hits;
        const r = await client.request({ path, method: 'POST', body: 'x' });
        await r.body.dump();
        results.push({
          status: r.statusCode,
          remaining: r.headers['x-ratelimit-remaining'] as string | undefined,
          upstreamUrl: upstream.hits > before ? upstream.lastUrl : null,
        });
      }
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 429]);
      expect(results.map((r) => r.remaining)).toEqual(['3', '2', '1', '0', '0']);
      // The upstream gets the canonical path (case kept), so it cannot be fooled either.
      expect(results.map((r) => r.upstreamUrl)).toEqual([
        '/transcribe',
        '/transcribe',
        '/transcribe',
        '/transcribe',
        null,
      ]);
    } finally {
      await client.close();
    }
  });

  it('passes a WebSocket-style upgrade through both ways, under the route limits', async () => {
    const port = untrusting.proxy.dataAddress.port;
    const upgrade =
      'GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
    const clients: RawClient[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const c = new RawClient();
        clients.push(c);
        await c.connect(port);
        c.write(upgrade);
        const head = await c.until('\r\n\r\n');
        expect(head).toMatch(/^HTTP\/1\.1 101 /);
        c.take();
        for (const message of [`ping-${i}`, ' and more']) {
          c.write(message);
          await c.until(message);
          expect(c.take()).toBe(message);
        }
      }
      expect(upstream.upgrades).toBe(2);
      expect(upstream.lastUrl).toBe('/ws');
      expect(upstream.lastHeaders!.upgrade).toBe('websocket');

      // The route's limit (2) applies to upgrades as to any request.
      const third = new RawClient();
      clients.push(third);
      await third.connect(port);
      third.write(upgrade);
      const refused = await third.until('}');
      expect(refused).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r\n/);
      expect(refused).toMatch(/\r\nretry-after: [1-9]\d*\r\n/i);
      expect(refused).toMatch(/\r\nratelimit-policy: "hourly";q=2;w=3600, "daily";q=2;w=86400\r\n/i);
      expect(refused).toMatch(/\r\nx-ratelimit-remaining: 0\r\n/i);
      expect(refused).toMatch(
        /\r\n\r\n\{"error":"Rate limit exceeded","limit":2,"window":"(hourly|daily)","retry_after":\d+\}$/,
      );
      expect(upstream.upgrades).toBe(2);
    } finally {
      for (const c of clients) c.destroy();
    }
  });
});
