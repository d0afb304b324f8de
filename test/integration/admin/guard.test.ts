// The admin listener's guard, over raw sockets: the Host must name the listener (so a rebound DNS
// name reads nothing), a state-changing request from a browser must come from the admin's own origin
// (and, riding on the dashboard session, carry X-Floodgate-Admin: 1), while curl-like clients, probes
// and scrapers keep working; HEAD on the probes answers like GET; every refusal is a JSON 4xx.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { type RawAnswer, rawRequest } from './raw-http.js';

const TOKEN = 'guard-admin-token';

function policy(upstreamUrl: string, admin: Record<string, unknown> = {}) {
  return {
    version: 1,
    admin,
    upstreams: { svc: { url: upstreamUrl } },
    routes: [{ name: 'svc', match: { path: '/svc/*' }, upstream: 'svc' }],
  };
}

const portOf = (url: string): number => Number(new URL(url).port);

function expectJsonError(r: RawAnswer, status: number): void {
  expect(r.status).toBe(status);
  expect(r.headers['content-type']).toBe('application/json');
  const body = JSON.parse(r.body) as Record<string, unknown>;
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error).toEqual(expect.any(String));
  expect(r.body).not.toMatch(/\bat .*\.ts:\d+/);
}

describe('admin listener on loopback, no token (the default)', () => {
  let upstream: TestUpstream;
  let p: TestProxy;
  let port: number;
  let own: string;
  const get = (path: string, headers: string[] = [`Host: ${own}`]) =>
    rawRequest(port, [`GET ${path} HTTP/1.1`, ...headers]);
  const post = (path: string, headers: string[], body = '') =>
    rawRequest(port, [`POST ${path} HTTP/1.1`, `Host: ${own}`, ...headers], body);

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy(policy(upstream.url));
    port = portOf(p.admin);
    own = `127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await p?.close();
    await upstream?.close();
  });

  it('answers to its own names, and any other with 421 (DNS rebinding), API and dashboard alike', async () => {
    for (const host of [own, `localhost:${port}`, `[::1]:${port}`]) {
      const r = await get('/admin/config', [`Host: ${host}`]);
      expect(r.status, host).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ version: 1 });
    }
    for (const path of ['/admin/config', '/admin/breakers', '/', '/admin/events']) {
      expectJsonError(await get(path, [`Host: evil.example:${port}`]), 421);
    }
    expectJsonError(await get('/admin/config', ['Host: 127.0.0.1.nip.io']), 421);
    expectJsonError(
      await rawRequest(port, ['POST /admin/reload HTTP/1.1', `Host: evil.example:${port}`]),
      421,
    );
    // HTTP/1.0 may omit Host; a browser never does, but the API stays closed to it all the same.
    expectJsonError(await rawRequest(port, ['GET /admin/config HTTP/1.0']), 421);
  });

  it('probes: open to any Host (scrapers use service names); HEAD answers like GET, without a body', async () => {
    for (const headers of [[`Host: floodgate:${port}`], [`Host: 10.0.0.7:${port}`], []]) {
      for (const path of ['/healthz', '/readyz', '/metrics']) {
        for (const method of ['GET', 'HEAD']) {
          const r = await rawRequest(port, [`${method} ${path} HTTP/1.0`, ...headers]);
          expect(r.status, `${method} ${path} ${headers}`).toBe(200);
        }
      }
    }
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const g = await get(path);
      const h = await rawRequest(port, [`HEAD ${path} HTTP/1.1`, `Host: ${own}`]);
      expect(h.status, path).toBe(g.status);
      expect(h.headers['content-type']).toBe(g.headers['content-type']);
      expect(Number(h.headers['content-length'])).toBeGreaterThan(0);
      expect(h.headers['transfer-encoding']).toBeUndefined();
      expect(h.body).toBe('');
    }
    const g = await get('/healthz');
    const h = await rawRequest(port, ['HEAD /healthz HTTP/1.1', `Host: ${own}`]);
    expect(h.headers['content-length']).toBe(g.headers['content-length']);
    expect(h.headers['cache-control']).toBe(g.headers['cache-control']);
  });

  it('refuses a POST from another site, another port of this host or an opaque origin; curl and its own page pass', async () => {
    const dataOrigin = `http://127.0.0.1:${portOf(p.url)}`;
    const refused = [
      ['Origin: http://evil.example', 'Sec-Fetch-Site: cross-site'],
      ['Origin: http://evil.example'],
      ['Sec-Fetch-Site: cross-site'],
      // A page served through the data port is same-site: the cookie would ride along.
      [`Origin: ${dataOrigin}`, 'Sec-Fetch-Site: same-site'],
      [`Origin: ${dataOrigin}`],
      ['Origin: null'],
    ];
    for (const headers of refused) {
      expectJsonError(await post('/admin/reload', headers), 403);
      expectJsonError(await post('/admin/breakers/svc/reset', headers), 403);
    }
    // Nothing was reloaded.
    expect(JSON.parse((await get('/admin/config')).body)).toMatchObject({ version: 1 });

    // curl sends no Origin and no Sec-Fetch-*; the dashboard sends its own origin and the header.
    const curl = await post('/admin/reload', ['User-Agent: curl/8.5.0', 'Accept: */*']);
    expect(curl.status).toBe(200);
    expect(JSON.parse(curl.body)).toEqual({ ok: true, version: 2 });
    const page = await post('/admin/breakers/svc/reset', [
      `Origin: http://${own}`,
      'Sec-Fetch-Site: same-origin',
      'X-Floodgate-Admin: 1',
    ]);
    expect(page.status).toBe(200);
    expect(JSON.parse(page.body)).toEqual({ ok: true, name: 'svc', state: 'CLOSED' });
  });

  it('answers malformed targets with a JSON 400, not a 500', async () => {
    expectJsonError(await post('/admin/breakers/%E0%A4%A/reset', []), 400);
    expectJsonError(await get('//['), 400);
  });
});

describe('admin listener on loopback with admin.token', () => {
  let upstream: TestUpstream;
  let p: TestProxy;
  let port: number;
  let own: string;
  let cookie: string;
  const post = (path: string, headers: string[], body = '') =>
    rawRequest(port, [`POST ${path} HTTP/1.1`, `Host: ${own}`, ...headers], body);

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy(policy(upstream.url, { token: TOKEN }));
    port = portOf(p.admin);
    own = `127.0.0.1:${port}`;
    const login = await rawRequest(port, [`GET /?token=${TOKEN} HTTP/1.1`, `Host: ${own}`]);
    expect(login.status).toBe(303);
    cookie = login.headers['set-cookie']!.split(';')[0]!;
  });
  afterAll(async () => {
    await p?.close();
    await upstream?.close();
  });

  it('a POST riding on the dashboard cookie needs X-Floodgate-Admin: 1 (a form cannot send it); Bearer does not', async () => {
    // A form on a page old enough to send neither Origin nor Sec-Fetch-Site.
    expectJsonError(await post('/admin/breakers/svc/reset', [`Cookie: ${cookie}`]), 403);
    expectJsonError(
      await post(
        '/admin/reload',
        [`Cookie: ${cookie}`, 'Content-Type: application/x-www-form-urlencoded'],
        'a=1',
      ),
      403,
    );
    const ok = await post('/admin/breakers/svc/reset', [`Cookie: ${cookie}`, 'X-Floodgate-Admin: 1']);
    expect(ok.status).toBe(200);
    const bearer = await post('/admin/reload', [`Authorization: Bearer ${TOKEN}`]);
    expect(bearer.status).toBe(200);
    expect(JSON.parse(bearer.body)).toEqual({ ok: true, version: 2 });
  });

  it('the cookie and the header are not enough from another port of this host', async () => {
    const r = await post('/admin/breakers/svc/reset', [
      `Cookie: ${cookie}`,
      'X-Floodgate-Admin: 1',
      `Origin: http://127.0.0.1:${portOf(p.url)}`,
      'Sec-Fetch-Site: same-site',
    ]);
    expectJsonError(r, 403);
  });
});

describe('admin listener on a wildcard address', () => {
  let upstream: TestUpstream;
  let p: TestProxy;
  let port: number;

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy(policy(upstream.url, { listen: '0.0.0.0:0' }));
    port = portOf(p.admin);
  });
  afterAll(async () => {
    await p?.close();
    await upstream?.close();
  });

  it('answers to any IP literal (a pod IP, a scraper) and localhost, and to no other name', async () => {
    for (const host of [`10.1.2.3:${port}`, `[fd00::7]:${port}`, `127.0.0.1:${port}`, `localhost:${port}`]) {
      expect((await rawRequest(port, ['GET /admin/breakers HTTP/1.1', `Host: ${host}`])).status, host).toBe(
        200,
      );
    }
    expectJsonError(
      await rawRequest(port, ['GET /admin/breakers HTTP/1.1', `Host: floodgate.internal:${port}`]),
      421,
    );
  });
});
