// The upstream breaker through a real proxy and upstream, on a manual clock: it opens after
// failure_threshold failures (failure statuses and connect errors), fails fast with the 503 circuit_open answer,
// admits exactly half_open_max_calls probes, closes after success_threshold successes, and shows all of
// it on /admin/breakers and in the circuit_breaker_* metrics.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../core/clock.js';
import { getJson, metrics, metricValue, startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { type SilentRedis, startSilentRedis } from '../../helpers/redis-server.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { waitFor } from '../../helpers/wait.js';

interface BreakerView {
  state: string;
  failure_count: number;
  success_count: number;
  total_calls: number;
  error_rate: number;
  last_failure_time: string | null;
}

async function send(url: string) {
  const r = await request(url);
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers as Record<string, string | undefined>, text };
}

describe('circuit breaker', () => {
  const clock = new ManualClock(Date.UTC(2026, 1, 21, 10, 0, 0));
  let upstream: TestUpstream;
  let p: TestProxy;

  async function breakers(): Promise<Record<string, BreakerView>> {
    return (await getJson<Record<string, BreakerView>>(`${p.admin}/admin/breakers`)).body;
  }

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy(
      {
        version: 1,
        upstreams: {
          svc: {
            url: upstream.url,
            timeouts: { connect: '2s', response: '10s', idle: '10s' },
            breaker: {
              failure_threshold: 3,
              success_threshold: 2,
              timeout: '30s',
              half_open_max_calls: 2,
              failure_statuses: [503],
            },
          },
        },
        routes: [{ name: 'svc', match: { path: '/svc/*' }, upstream: 'svc' }],
      },
      { clock },
    );
  });

  afterAll(async () => {
    await p?.close();
    await upstream?.close();
  });

  it('opens after failure_threshold failures, fails fast, probes in HALF_OPEN and closes again', async () => {
    expect((await send(`${p.url}/svc/a`)).status).toBe(200);
    expect((await breakers()).svc).toMatchObject({ state: 'CLOSED', failure_count: 0, success_count: 1 });

    // Two 503s from the upstream: passed on as they are, and counted.
    upstream.mode = { kind: 'status', status: 503 };
    for (let i = 0; i < 2; i++) {
      const r = await send(`${p.url}/svc/a`);
      expect(r.status).toBe(503);
      expect(r.headers['x-upstream']).toBe('yes');
    }
    expect((await breakers()).svc).toMatchObject({ state: 'CLOSED', failure_count: 2 });

    // A connect error is the third consecutive failure: 502, and the circuit opens.
    await upstream.close();
    const down = await send(`${p.url}/svc/a`);
    expect(down.status).toBe(502);
    expect(down.text).toBe('{"error":"Bad gateway","upstream":"svc"}');
    const opened = (await breakers()).svc!;
    expect(opened).toMatchObject({ state: 'OPEN', failure_count: 3, success_count: 1, total_calls: 4 });
    expect(opened.error_rate).toBeCloseTo(0.75);
    expect(opened.last_failure_time).toBe('2026-02-21T10:00:00Z');

    // OPEN: the proxy answers itself, even though the upstream is back.
    await upstream.restart();
    upstream.mode = { kind: 'ok' };
    const hits = upstream.hits;
    clock.advance(12_000);
    const fast = await send(`${p.url}/svc/a`);
    expect(fast.status).toBe(503);
    expect(fast.headers['retry-after']).toBe('18');
    expect(fast.headers['cache-control']).toBe('no-store');
    expect(fast.text).toBe(
      '{"error":"Service temporarily unavailable","upstream":"svc","state":"OPEN","retry_after":18}',
    );
    expect(upstream.hits).toBe(hits);

    let m = await metrics(p.admin);
    expect(metricValue(m, 'circuit_breaker_state', { service: 'svc' })).toBe(1);
    expect(metricValue(m, 'circuit_breaker_failures_total', { service: 'svc' })).toBe(3);
    expect(metricValue(m, 'circuit_breaker_transitions_total', { service: 'svc', to: 'OPEN' })).toBe(1);

    // Past the OPEN timeout: HALF_OPEN admits exactly two probes at once.
    clock.advance(18_000);
    upstream.mode = { kind: 'hold' };
    const probes = [send(`${p.url}/svc/p1`), send(`${p.url}/svc/p2`)];
    await waitFor(() => upstream.held === 2, { what: 'two probes at the upstream' });
    const rejected = await Promise.all([1, 2, 3].map((i) => send(`${p.url}/svc/r${i}`)));
    for (const r of rejected) {
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('1');
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.text).toBe(
        '{"error":"Service temporarily unavailable","upstream":"svc","state":"HALF_OPEN","retry_after":1}',
      );
    }
    expect(upstream.hits).toBe(hits + 2);
    expect((await breakers()).svc!.state).toBe('HALF_OPEN');
    m = await metrics(p.admin);
    expect(metricValue(m, 'circuit_breaker_state', { service: 'svc' })).toBe(2);

    // One success is not enough (success_threshold 2); the second closes the circuit.
    upstream.release(1);
    const [first] = await Promise.race([probes[0]!.then((r) => [r]), probes[1]!.then((r) => [r])]);
    expect(first!.status).toBe(200);
    expect((await breakers()).svc!.state).toBe('HALF_OPEN');
    upstream.release(1);
    const done = await Promise.all(probes);
    expect(done.map((r) => r.status)).toEqual([200, 200]);
    expect((await breakers()).svc).toMatchObject({ state: 'CLOSED', success_count: 3, failure_count: 3 });

    upstream.mode = { kind: 'ok' };
    expect((await send(`${p.url}/svc/after`)).status).toBe(200);
    m = await metrics(p.admin);
    expect(metricValue(m, 'circuit_breaker_state', { service: 'svc' })).toBe(0);
    expect(metricValue(m, 'circuit_breaker_transitions_total', { service: 'svc', to: 'HALF_OPEN' })).toBe(1);
    expect(metricValue(m, 'circuit_breaker_transitions_total', { service: 'svc', to: 'CLOSED' })).toBe(1);
  });

  it('reopens when a HALF_OPEN probe fails', async () => {
    upstream.mode = { kind: 'status', status: 503 };
    for (let i = 0; i < 3; i++) expect((await send(`${p.url}/svc/x`)).status).toBe(503);
    expect((await breakers()).svc!.state).toBe('OPEN');
    clock.advance(30_000);
    expect((await send(`${p.url}/svc/probe`)).status).toBe(503);
    const again = await send(`${p.url}/svc/x`);
    expect(again.headers['retry-after']).toBe('30');
    expect(JSON.parse(again.text)).toMatchObject({ state: 'OPEN', retry_after: 30 });
  });

  it('POST /admin/breakers/NAME/reset forces CLOSED; an unknown name is 404', async () => {
    expect((await breakers()).svc!.state).toBe('OPEN');
    const reset = await getJson(`${p.admin}/admin/breakers/svc/reset`, 'POST');
    expect(reset.status).toBe(200);
    expect((await breakers()).svc).toMatchObject({ state: 'CLOSED', failure_count: 0 });
    upstream.mode = { kind: 'ok' };
    expect((await send(`${p.url}/svc/x`)).status).toBe(200);

    const unknown = await getJson(`${p.admin}/admin/breakers/nope/reset`, 'POST');
    expect(unknown.status).toBe(404);
  });

  it('does not count a client abort as a failure, and aborts the upstream request', async () => {
    const before = (await breakers()).svc!;
    upstream.mode = { kind: 'hold' };
    const aborted = upstream.aborted;
    const controller = new AbortController();
    const pending = request(`${p.url}/svc/abandoned`, { signal: controller.signal });
    await waitFor(() => upstream.held === 1, { what: 'the request at the upstream' });
    controller.abort();
    await expect(pending).rejects.toThrow();
    await waitFor(() => upstream.aborted === aborted + 1, { what: 'the upstream request to be aborted' });
    upstream.release();
    const after = (await breakers()).svc!;
    expect(after.failure_count).toBe(before.failure_count);
    expect(after.total_calls).toBe(before.total_calls);
    expect(after.state).toBe('CLOSED');
  });
});

describe('a client that leaves while the limiter decides', () => {
  let upstream: TestUpstream;
  let store: SilentRedis;
  let p: TestProxy;

  beforeAll(async () => {
    upstream = await startUpstream();
    // A store that never answers holds each request in the limiter until store.timeout; with
    // on_error: allow it then passes, so only the client's absence can stop it being forwarded.
    store = await startSilentRedis();
    p = await startTestProxy({
      version: 1,
      store: { type: 'redis', url: store.url, timeout: '500ms', on_error: 'allow' },
      upstreams: { app: { url: upstream.url } },
      routes: [{ name: 'r', match: { path: '/r' }, upstream: 'app', limits: { hourly: 10, daily: 10 } }],
    });
  });

  afterAll(async () => {
    await p?.close();
    await store?.close();
    await upstream?.close();
  });

  it.each(['GET', 'POST'] as const)('%s: is not forwarded and not counted by the breaker', async (method) => {
    const calls = store.commands.length;
    const controller = new AbortController();
    const pending = request(`${p.url}/r`, {
      method,
      body: method === 'POST' ? Buffer.alloc(4096, 0x61) : undefined,
      signal: controller.signal,
    });
    await waitFor(() => store.commands.length > calls, { what: 'the limiter to call the store' });
    controller.abort();
    await expect(pending).rejects.toThrow();
    await waitFor(
      async () =>
        metricValue(await metrics(p.admin), 'proxy_requests_total', {
          route: 'r',
          upstream: 'app',
          status: '499',
        }),
      { what: 'the abandoned request to finish' },
    );
    expect(upstream.hits).toBe(0);
    const b = (await getJson<Record<string, BreakerView>>(`${p.admin}/admin/breakers`)).body;
    expect(b.app).toMatchObject({ state: 'CLOSED', failure_count: 0, total_calls: 0 });
  });
});
