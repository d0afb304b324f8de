// The dashboard's token rule and its live feed, over plain HTTP: with admin.token set, GET / takes
// the token once as ?token= and answers with an HttpOnly, SameSite=Strict session cookie that lasts
// 12 hours, and a redirect to a clean URL; /admin/* then accepts that cookie as well as the Bearer
// header, and nothing else. A session ends when its 12 hours are up (by the proxy's clock, whatever
// the browser keeps) or when the token changes (a reload). Without a token the page and the feed are
// open. The feed is server-sent events, one JSON snapshot per message.
import { createHmac } from 'node:crypto';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../core/clock.js';
import type { DashboardSnapshot } from '../../../proxy/http/dashboard/snapshot.js';
import { startTestProxy, type TestProxy, writePolicy } from '../../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

const TOKEN = 's3cret-admin-token';

function policy(upstreamUrl: string, token: string | null) {
  return {
    version: 1,
    admin: token === null ? {} : { token },
    upstreams: { svc: { url: upstreamUrl } },
    routes: [{ name: 'svc', match: { path: '/svc/*' }, upstream: 'svc', limits: { hourly: 2 } }],
  };
}

async function get(url: string, headers: Record<string, string> = {}) {
  const r = await request(url, { headers });
  const body = await r.body.text();
  return { status: r.statusCode, headers: r.headers, body };
}

/** Reads the first `data:` message of an event stream, then closes it. */
async function firstEvent(url: string, headers: Record<string, string>): Promise<DashboardSnapshot> {
  const controller = new AbortController();
  const r = await request(url, { headers, signal: controller.signal });
  expect(r.statusCode).toBe(200);
  expect(r.headers['content-type']).toMatch(/^text\/event-stream/);
  let text = '';
  for await (const chunk of r.body) {
    text += String(chunk);
    const m = /^data: (.*)$/m.exec(text);
    if (m && text.includes('\n\n', m.index)) {
      controller.abort();
      return JSON.parse(m[1]!) as DashboardSnapshot;
    }
  }
  throw new Error('the stream ended without a message');
}

describe('dashboard with admin.token set', () => {
  let upstream: TestUpstream;
  let p: TestProxy;
  let cookie: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy(policy(upstream.url, TOKEN));
  });
  afterAll(async () => {
    await p?.close();
    await upstream?.close();
  });

  it('refuses the page without the token, and with a wrong one', async () => {
    const bare = await get(`${p.admin}/`);
    expect(bare.status).toBe(401);
    expect(bare.headers['set-cookie']).toBeUndefined();
    expect(bare.body).toContain('?token=');
    const wrong = await get(`${p.admin}/?token=nope`);
    expect(wrong.status).toBe(401);
    expect(wrong.headers['set-cookie']).toBeUndefined();
  });

  it('takes ?token= once: an HttpOnly SameSite=Strict 12-hour cookie and a redirect to a clean URL', async () => {
    const r = await get(`${p.admin}/?token=${TOKEN}`);
    expect(r.status).toBe(303);
    expect(r.headers.location).toBe('/');
    const set = String(r.headers['set-cookie']);
    expect(set).toMatch(/^floodgate_admin=[^;]+;/);
    expect(set).toContain('HttpOnly');
    expect(set).toContain('SameSite=Strict');
    expect(set).toContain('Path=/');
    expect(set).toContain('Max-Age=43200');
    // The cookie is derived from the token, not the token itself.
    expect(set).not.toContain(TOKEN);
    cookie = set.split(';')[0]!;

    const pageAnswer = await get(`${p.admin}/`, { cookie });
    expect(pageAnswer.status).toBe(200);
    expect(pageAnswer.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(pageAnswer.headers['content-security-policy']).toContain("connect-src 'self'");
    expect(pageAnswer.body).toContain('/admin/events');
  });

  it('/admin/* accepts the cookie or the Bearer header, and nothing else', async () => {
    expect((await get(`${p.admin}/admin/breakers`, { cookie })).status).toBe(200);
    expect((await get(`${p.admin}/admin/breakers`, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await get(`${p.admin}/admin/breakers`)).status).toBe(401);
    expect((await get(`${p.admin}/admin/breakers`, { cookie: `floodgate_admin=${TOKEN}` })).status).toBe(401);
    expect((await get(`${p.admin}/admin/breakers`, { cookie: 'floodgate_admin=forged' })).status).toBe(401);
    expect((await get(`${p.admin}/admin/events`)).status).toBe(401);
    // The token itself never works as a query parameter on the API.
    expect((await get(`${p.admin}/admin/breakers?token=${TOKEN}`)).status).toBe(401);
  });

  it('streams snapshots with breakers, route totals, store health and the policy version', async () => {
    await get(`${p.url}/svc/a`);
    await get(`${p.url}/svc/b`);
    expect((await get(`${p.url}/svc/c`)).status).toBe(429);
    const snap = await firstEvent(`${p.admin}/admin/events`, { cookie });
    expect(snap.policy.version).toBe(1);
    expect(snap.store).toEqual({ type: 'memory', health: 'ok', errors_total: 0 });
    expect(snap.breakers).toEqual([
      expect.objectContaining({ name: 'svc', state: 'CLOSED', total_calls: 2 }),
    ]);
    expect(snap.routes).toEqual([
      expect.objectContaining({
        name: 'svc',
        upstream: 'svc',
        limits: 'enforced',
        requests: 3,
        allowed: 2,
        limited: 1,
      }),
    ]);
    expect(snap.transitions).toEqual([]);
  });

  it('a new token (reload) invalidates the cookie', async () => {
    await writePolicy(p.file, policy(upstream.url, 'another-token'));
    expect(await p.proxy.reload()).toEqual({ ok: true, version: 2 });
    expect((await get(`${p.admin}/admin/breakers`, { cookie })).status).toBe(401);
    expect((await get(`${p.admin}/`, { cookie })).status).toBe(401);
  });
});

describe('dashboard sessions expire', () => {
  const clock = new ManualClock(Date.UTC(2026, 1, 21, 10, 0, 0));
  let upstream: TestUpstream;
  let p: TestProxy;

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy(policy(upstream.url, TOKEN), { clock });
  });
  afterAll(async () => {
    await p?.close();
    await upstream?.close();
  });

  it('12 hours after login, by the proxy’s clock, whatever the browser keeps', async () => {
    const login = await get(`${p.admin}/?token=${TOKEN}`);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    clock.advance(12 * 60 * 60 * 1000 - 1);
    expect((await get(`${p.admin}/admin/breakers`, { cookie })).status).toBe(200);
    expect((await get(`${p.admin}/`, { cookie })).status).toBe(200);
    clock.advance(1);
    expect((await get(`${p.admin}/admin/breakers`, { cookie })).status).toBe(401);
    expect((await get(`${p.admin}/`, { cookie })).status).toBe(401);
    // Logging in again starts a new session.
    const again = String((await get(`${p.admin}/?token=${TOKEN}`)).headers['set-cookie']).split(';')[0]!;
    expect((await get(`${p.admin}/admin/breakers`, { cookie: again })).status).toBe(200);
  });

  it('the old never-expiring cookie, an HMAC of the token alone, opens nothing', async () => {
    const v1 = createHmac('sha256', TOKEN).update('floodgate admin session v1').digest('base64url');
    expect((await get(`${p.admin}/admin/breakers`, { cookie: `floodgate_admin=${v1}` })).status).toBe(401);
    expect((await get(`${p.admin}/`, { cookie: `floodgate_admin=${v1}` })).status).toBe(401);
  });
});

describe('dashboard without a token', () => {
  let upstream: TestUpstream;
  let p: TestProxy;

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy(policy(upstream.url, null));
  });
  afterAll(async () => {
    await p?.close();
    await upstream?.close();
  });

  it('serves the page and the feed to anyone, and ignores ?token=', async () => {
    const r = await get(`${p.admin}/?token=whatever`);
    expect(r.status).toBe(200);
    expect(r.headers['set-cookie']).toBeUndefined();
    const snap = await firstEvent(`${p.admin}/admin/events`, {});
    expect(snap.breakers.map((b) => b.name)).toEqual(['svc']);
  });
});
