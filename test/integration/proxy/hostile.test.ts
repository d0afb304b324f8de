// What a hostile client or upstream can do to the proxy, on real sockets: spoofed client-address
// headers, IPv6 address rotation, bodies the proxy must read before it contacts the upstream, clients
// that will not read their response, and upstreams whose answers are broken.
import { once } from 'node:events';
import { createServer, type Server, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { waitFor } from '../../helpers/wait.js';

const agent = new Agent({ connections: 8 });

async function send(
  url: string,
  o: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer | Readable;
  } = {},
): Promise<{ status: number; body: string }> {
  const r = await request(url, {
    dispatcher: agent,
    method: (o.method ?? 'GET') as 'GET',
    headers: o.headers,
    body: o.body,
  });
  return { status: r.statusCode, body: await r.body.text() };
}

describe('hostile clients and upstreams', () => {
  let upstream: TestUpstream;
  let proxy: TestProxy;
  let trusting: TestProxy;

  beforeAll(async () => {
    upstream = await startUpstream();
    const routes = [
      { name: 'limited', match: { path: '/limited' }, upstream: 'app', limits: { hourly: 2, daily: 100 } },
      { name: 'small', match: { path: '/small' }, upstream: 'app', max_body: '150kb' },
      { name: 'open', match: { path: '/*' }, upstream: 'app' },
    ];
    const upstreams = { app: { url: upstream.url, breaker: { failure_threshold: 100 } } };
    proxy = await startTestProxy(
      { version: 1, listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, upstreams, routes },
      { env: { ...process.env, FLOODGATE_SEND_TIMEOUT: '1s' } },
    );
    trusting = await startTestProxy({
      version: 1,
      listen: '127.0.0.1:0',
      admin: { listen: '127.0.0.1:0' },
      client_ip: { trusted_proxies: ['127.0.0.1/32'] },
      upstreams,
      routes,
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await trusting?.close();
    await upstream?.close();
    await agent.close();
  });

  it('replaces X-Real-IP and drops Forwarded from an untrusted peer; extends Forwarded from a trusted one', async () => {
    const spoof = { 'x-real-ip': '6.6.6.6', forwarded: 'for=6.6.6.6', 'x-forwarded-for': '9.9.9.9' };
    await send(`${proxy.url}/open/a`, { headers: spoof });
    expect(upstream.lastHeaders!['x-real-ip']).toBe('127.0.0.1');
    expect(upstream.lastHeaders!.forwarded).toBeUndefined();

    await send(`${trusting.url}/open/a`, { headers: spoof });
    expect(upstream.lastHeaders!['x-real-ip']).toBe('9.9.9.9');
    expect(upstream.lastHeaders!.forwarded).toBe('for=6.6.6.6, for=127.0.0.1');
  });

  it('counts the IPv6 addresses of one /64 as one client', async () => {
    const from = (ip: string) => send(`${trusting.url}/limited`, { headers: { 'x-forwarded-for': ip } });
    const statuses = [];
    for (const ip of ['2001:db8::1', '2001:db8::2:3', '2001:db8:0:0:ffff::9'])
      statuses.push((await from(ip)).status);
    expect(statuses).toEqual([200, 200, 429]);
    expect((await from('2001:db8:0:1::1')).status).toBe(200);
    const { body } = await getJson<{ windows: { name: string; remaining: number }[] }>(
      `${trusting.admin}/admin/limits?route=limited&key=${encodeURIComponent('2001:db8::77')}`,
    );
    expect(body.windows.find((w) => w.name === 'hourly')?.remaining).toBe(0);
  });

  it('reads a body before forwarding it: large bodies whole, chunked ones with their length, oversized ones 413', async () => {
    const big = Buffer.alloc(200_000, 7);
    let r = await send(`${proxy.url}/open/big`, { method: 'POST', body: big });
    expect(JSON.parse(r.body)).toMatchObject({ bytes: 200_000 });
    expect(upstream.lastHeaders!['content-length']).toBe('200000');

    async function* chunks(n: number): AsyncIterable<Buffer> {
      for (let i = 0; i < n; i++) yield Buffer.alloc(10_000, 1);
    }
    r = await send(`${proxy.url}/open/chunked`, { method: 'POST', body: Readable.from(chunks(10)) });
    expect(JSON.parse(r.body)).toMatchObject({ bytes: 100_000 });
    expect(upstream.lastHeaders!['content-length']).toBe('100000');
    expect(upstream.lastHeaders!['transfer-encoding']).toBeUndefined();

    const hits = upstream.hits;
    r = await send(`${proxy.url}/small`, { method: 'POST', body: Readable.from(chunks(20)) });
    expect(r.status).toBe(413);
    expect(upstream.hits).toBe(hits);
  });

  it('answers Expect: 100-continue only once the request is admitted', async () => {
    const port = Number(new URL(proxy.url).port);
    // The first status line the client sees; an admitted request is sent its body and run to the end.
    const firstLine = (): Promise<string> =>
      new Promise((resolve) => {
        const s = new Socket();
        let text = '';
        s.on('error', () => undefined);
        s.on('data', (d: Buffer) => {
          const fresh = text === '';
          text += d.toString('latin1');
          if (fresh && text.includes(' 100 ')) s.write('hello');
          else if (fresh) s.destroy();
        });
        s.on('close', () => resolve(text.split('\r\n')[0]!));
        s.connect(port, '127.0.0.1', () =>
          s.write(
            'POST /limited HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n',
          ),
        );
      });
    const lines = [await firstLine(), await firstLine(), await firstLine()];
    // The limit is 2: the third is refused before it sends a byte of its body.
    expect(lines).toEqual([
      'HTTP/1.1 100 Continue',
      'HTTP/1.1 100 Continue',
      'HTTP/1.1 429 Too Many Requests',
    ]);
  });

  it('gives up on a client that reads nothing, without buffering the response or counting a failure', async () => {
    const total = 50 * 1024 * 1024;
    let written = 0;
    let closed = false;
    upstream.mode = {
      kind: 'custom',
      handle: (_req, res) => {
        res.writeHead(200, { 'content-length': String(total) });
        const chunk = Buffer.alloc(64 * 1024);
        const pump = (): void => {
          while (written < total && !res.destroyed) {
            written += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => {
          closed = true;
        });
        pump();
      },
    };
    const aborted = upstream.aborted;
    const client = new Socket();
    client.on('error', () => undefined);
    const clientClosed = once(client, 'close');
    client.connect(Number(new URL(proxy.url).port), '127.0.0.1', () => {
      client.write('GET /open/stream HTTP/1.1\r\nHost: a\r\n\r\n');
      client.pause();
    });
    await waitFor(() => closed, { what: 'the upstream response to be cut' });
    // The proxy closed its side; the client sees that once it reads what was already on the way.
    client.resume();
    await clientClosed;
    upstream.mode = { kind: 'ok' };
    expect(upstream.aborted).toBe(aborted + 1);
    // Socket buffers on the way hold a few MB at most; the rest was never sent.
    expect(written).toBeLessThan(total / 4);
    const { body } = await getJson<Record<string, { failure_count: number }>>(
      `${proxy.admin}/admin/breakers`,
    );
    expect(body.app!.failure_count).toBe(0);
  });

  describe('an upstream whose answers are broken', () => {
    let raw: Server;
    let answer = '';
    let hostile: TestProxy;

    beforeAll(async () => {
      raw = createServer((s) => {
        s.on('error', () => undefined);
        s.once('data', () => {
          s.end(answer);
        });
      });
      raw.listen(0, '127.0.0.1');
      await once(raw, 'listening');
      const port = (raw.address() as { port: number }).port;
      hostile = await startTestProxy({
        version: 1,
        listen: '127.0.0.1:0',
        admin: { listen: '127.0.0.1:0' },
        upstreams: { raw: { url: `http://127.0.0.1:${port}`, breaker: { failure_threshold: 100 } } },
        routes: [{ name: 'raw', match: { path: '/*' }, upstream: 'raw' }],
      });
    });

    afterAll(async () => {
      await hostile?.close();
      raw?.close();
    });

    it('costs one 502 counted by the breaker for each, and the proxy keeps serving', async () => {
      const cases = [
        'HTTP/1.1 200 OK\r\nX-Bad: a\u0001b\r\nContent-Length: 2\r\n\r\nok',
        `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}\r\nContent-Length: 2\r\n\r\nok`,
        'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten b',
        'NOT HTTP AT ALL\r\n\r\n',
        '',
      ];
      const statuses: number[] = [];
      for (const c of cases) {
        answer = c;
        try {
          const r = await request(`${hostile.url}/x`, { dispatcher: agent });
          await r.body.text();
          statuses.push(r.statusCode);
        } catch {
          statuses.push(0); // the response had started and was cut: the client sees it truncated
        }
      }
      // A body cut short after its headers: a 502, or, once the response has started, a truncated one.
      expect([0, 502]).toContain(statuses[2]);
      expect(statuses.filter((_, i) => i !== 2)).toEqual([502, 502, 502, 502]);
      const { body } = await getJson<Record<string, { failure_count: number }>>(
        `${hostile.admin}/admin/breakers`,
      );
      expect(body.raw!.failure_count).toBe(cases.length);
      answer = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
      expect((await send(`${hostile.url}/x`)).status).toBe(200);
    });
  });
});
