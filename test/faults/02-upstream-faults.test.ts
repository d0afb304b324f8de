// Fault 2: the upstream is killed, restarted, made to return 503s and made slow, behind a proxy process.
// The breaker's transitions (read from the proxy's log and metrics) must be exactly those the config
// implies; OPEN must keep every request off the upstream; HALF_OPEN must admit exactly
// half_open_max_calls probes out of a concurrent burst (no thundering herd), refusing the rest with the
// 503 HALF_OPEN answer (the README's "What each failure does"); and a slow upstream must give 504 after timeouts.response, not later.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChildProxy,
  getJson,
  metrics,
  metricValue,
  spawnProxy,
  tempDir,
  writePolicy,
} from '../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';
import { recordFault } from './lib/report.js';

const FAILURE_THRESHOLD = 3;
const SUCCESS_THRESHOLD = 2;
const OPEN_MS = 1_000;
const HALF_OPEN_MAX_CALLS = 2;
const RESPONSE_TIMEOUT_MS = 300;
const BURST = 40;

interface Answer {
  status: number;
  text: string;
  headers: Record<string, string | string[] | undefined>;
  ms: number;
}

describe('fault 2: upstream killed, restarted, failing and slow', () => {
  let upstream: TestUpstream;
  let proxy: ChildProxy;
  let dir: string;
  const agent = new Agent({ connections: BURST * 2 });

  beforeAll(async () => {
    upstream = await startUpstream();
    dir = await tempDir('faults-upstream');
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, {
      version: 1,
      upstreams: {
        up: {
          url: upstream.url,
          timeouts: { connect: '1s', response: `${RESPONSE_TIMEOUT_MS}ms`, idle: '5s' },
          breaker: {
            failure_threshold: FAILURE_THRESHOLD,
            success_threshold: SUCCESS_THRESHOLD,
            timeout: `${OPEN_MS}ms`,
            half_open_max_calls: HALF_OPEN_MAX_CALLS,
            failure_statuses: [502, 503, 504],
          },
        },
      },
      routes: [{ name: 'svc', match: { path: '/svc/*' }, upstream: 'up' }],
    });
    proxy = await spawnProxy(file);
  });

  afterAll(async () => {
    await proxy?.kill();
    await agent.close();
    await upstream?.close().catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function send(path = '/svc/x'): Promise<Answer> {
    const started = performance.now();
    const r = await request(`${proxy.url}${path}`, { dispatcher: agent });
    const text = await r.body.text();
    return { status: r.statusCode, text, headers: r.headers, ms: performance.now() - started };
  }

  const state = async (): Promise<string> =>
    (await getJson<Record<string, { state: string }>>(`${proxy.admin}/admin/breakers`)).body.up!.state;

  /**
   * The breaker reaches `wanted`. One process decides as the answer goes out; with `workers` the
   * outcome reaches the primary's breaker a message after the client has its answer (README, Workers).
   */
  async function expectState(wanted: string): Promise<void> {
    await waitFor(async () => (await state()) === wanted, { timeoutMs: 2_000, intervalMs: 10, what: wanted });
  }

  /** OPEN turns HALF_OPEN once timeout has passed; the admin view is a look that makes it so. */
  async function waitHalfOpen(): Promise<number> {
    const started = performance.now();
    await waitFor(async () => (await state()) === 'HALF_OPEN', {
      timeoutMs: OPEN_MS + 5_000,
      intervalMs: 50,
      what: 'HALF_OPEN',
    });
    return performance.now() - started;
  }

  function expectOpenAnswer(a: Answer, st: 'OPEN' | 'HALF_OPEN'): void {
    expect(a.status).toBe(503);
    expect(a.headers['x-upstream']).toBeUndefined();
    expect(a.headers['cache-control']).toBe('no-store');
    const body = JSON.parse(a.text) as Record<string, unknown>;
    expect(body).toMatchObject({ error: 'Service temporarily unavailable', upstream: 'up', state: st });
    const retry = Number(a.headers['retry-after']);
    if (st === 'HALF_OPEN') expect(retry).toBe(1);
    else expect(retry).toBeGreaterThanOrEqual(1);
    expect(body.retry_after).toBe(retry);
  }

  /** While OPEN, a concurrent burst is refused at once and never reaches the upstream. */
  async function expectOpenBurst(): Promise<void> {
    const before = upstream.hits;
    const answers = await Promise.all(Array.from({ length: BURST }, () => send()));
    for (const a of answers) expectOpenAnswer(a, 'OPEN');
    expect(upstream.hits).toBe(before);
  }

  /**
   * HALF_OPEN: a concurrent burst against an upstream that holds its answers. Exactly
   * half_open_max_calls reach it; the rest get the HALF_OPEN 503 at once. Releasing the probes with
   * `status` then decides the state.
   */
  async function probeBurst(status: number): Promise<{ probes: number; refused: number }> {
    const mode = upstream.mode;
    upstream.mode = { kind: 'hold' };
    const before = upstream.hits;
    const answered: Answer[] = [];
    const pending = Array.from({ length: BURST }, () =>
      send().then((a) => {
        answered.push(a);
        return a;
      }),
    );
    await waitFor(() => upstream.held >= HALF_OPEN_MAX_CALLS, { timeoutMs: 5_000, what: 'the probes' });
    // The refusals come back while the probes are still held.
    await waitFor(() => answered.length >= BURST - HALF_OPEN_MAX_CALLS, {
      timeoutMs: 5_000,
      what: 'the refusals',
    });
    const refused = [...answered];
    expect(refused).toHaveLength(BURST - HALF_OPEN_MAX_CALLS);
    for (const a of refused) expectOpenAnswer(a, 'HALF_OPEN');
    expect(upstream.held).toBe(HALF_OPEN_MAX_CALLS);
    expect(upstream.hits - before).toBe(HALF_OPEN_MAX_CALLS);
    upstream.mode = mode;
    expect(upstream.release(HALF_OPEN_MAX_CALLS, status)).toBe(HALF_OPEN_MAX_CALLS);
    const probes = (await Promise.all(pending)).filter((a) => !refused.includes(a));
    expect(probes.map((a) => a.status)).toEqual(Array(HALF_OPEN_MAX_CALLS).fill(status));
    return { probes: probes.length, refused: refused.length };
  }

  /** The proxy's breaker log lines for `up`, as "TO (reason)". */
  function transitions(): string[] {
    const out: string[] = [];
    for (const line of proxy.output().split('\n')) {
      if (!line.includes('"service":"up"') || !line.includes('circuit breaker')) continue;
      const l = JSON.parse(line) as { msg: string; to?: string; reason: string };
      out.push(`${l.msg === 'circuit breaker opened' ? 'OPEN' : l.to} (${l.reason})`);
    }
    return out;
  }

  it('moves through exactly the transitions the config implies', async () => {
    const observed: string[] = [];
    expect((await send()).status).toBe(200);
    expect(await state()).toBe('CLOSED');

    // Killed: failure_threshold 502s, then the circuit opens and answers for the upstream.
    await upstream.close();
    const killed: Answer[] = [];
    for (let i = 0; i < FAILURE_THRESHOLD; i++) killed.push(await send());
    expect(killed.map((a) => a.status)).toEqual(Array(FAILURE_THRESHOLD).fill(502));
    expect(JSON.parse(killed[0]!.text)).toEqual({ error: 'Bad gateway', upstream: 'up' });
    await expectState('OPEN');
    await expectOpenBurst();
    observed.push(`killed: ${FAILURE_THRESHOLD}×502 then OPEN`);

    // Restarted: after timeout, HALF_OPEN admits exactly half_open_max_calls; their successes close it.
    await upstream.restart();
    const waited = await waitHalfOpen();
    const restart = await probeBurst(200);
    await expectState('CLOSED');
    expect((await send()).status).toBe(200);
    observed.push(
      `restarted: HALF_OPEN after ${Math.round(waited)} ms more, ${restart.probes} probes of ${BURST}, ${restart.refused} refused, CLOSED`,
    );

    // 503s: passed on as the upstream's until the threshold, then the proxy's own; a failed probe reopens.
    upstream.mode = { kind: 'status', status: 503 };
    const failing: Answer[] = [];
    for (let i = 0; i < FAILURE_THRESHOLD; i++) failing.push(await send());
    expect(failing.map((a) => [a.status, a.headers['x-upstream']])).toEqual(
      Array(FAILURE_THRESHOLD).fill([503, 'yes']),
    );
    await expectState('OPEN');
    expectOpenAnswer(await send(), 'OPEN');
    await expectOpenBurst();
    await waitHalfOpen();
    await probeBurst(503);
    await expectState('OPEN');
    upstream.mode = { kind: 'ok' };
    await waitHalfOpen();
    await probeBurst(200);
    await expectState('CLOSED');
    observed.push('503s: OPEN, failed probes reopen, good probes close');

    // Slow: 504 after timeouts.response (not the upstream's 5 s), then OPEN. undici times the response
    // with coarse timers (about 1 s resolution), so the 504 comes up to a second after the timeout.
    upstream.mode = { kind: 'slow', delayMs: 5_000 };
    const slow: Answer[] = [];
    for (let i = 0; i < FAILURE_THRESHOLD; i++) slow.push(await send());
    expect(slow.map((a) => a.status)).toEqual(Array(FAILURE_THRESHOLD).fill(504));
    expect(JSON.parse(slow[0]!.text)).toEqual({ error: 'Gateway timeout', upstream: 'up' });
    for (const a of slow) {
      expect(a.ms).toBeGreaterThanOrEqual(RESPONSE_TIMEOUT_MS - 5);
      expect(a.ms).toBeLessThan(RESPONSE_TIMEOUT_MS + 2_000);
    }
    await expectState('OPEN');
    await expectOpenBurst();
    upstream.mode = { kind: 'ok' };
    await waitHalfOpen();
    await probeBurst(200);
    await expectState('CLOSED');
    observed.push(
      `slow: 504 in ${Math.round(Math.min(...slow.map((a) => a.ms)))}–${Math.round(Math.max(...slow.map((a) => a.ms)))} ms (timeout ${RESPONSE_TIMEOUT_MS}), OPEN, closed again`,
    );

    const expected = [
      'OPEN (tripped)',
      'HALF_OPEN (timeout-elapsed)',
      'CLOSED (probes-succeeded)',
      'OPEN (tripped)',
      'HALF_OPEN (timeout-elapsed)',
      'OPEN (probe-failed)',
      'HALF_OPEN (timeout-elapsed)',
      'CLOSED (probes-succeeded)',
      'OPEN (tripped)',
      'HALF_OPEN (timeout-elapsed)',
      'CLOSED (probes-succeeded)',
    ];
    await waitFor(() => transitions().length >= expected.length, { what: 'the transition log lines' });
    expect(transitions()).toEqual(expected);
    const text = await metrics(proxy.admin);
    expect(metricValue(text, 'circuit_breaker_transitions_total', { service: 'up', to: 'OPEN' })).toBe(4);
    expect(metricValue(text, 'circuit_breaker_transitions_total', { service: 'up', to: 'HALF_OPEN' })).toBe(
      4,
    );
    expect(metricValue(text, 'circuit_breaker_transitions_total', { service: 'up', to: 'CLOSED' })).toBe(3);
    expect(metricValue(text, 'circuit_breaker_state', { service: 'up' })).toBe(0);

    await recordFault({
      fault: '2 Upstream killed, restarted, 503s, slow (threshold 3, half_open_max_calls 2)',
      observed: `${observed.join('; ')}; transitions = config (${expected.length}); every OPEN burst of ${BURST} kept off the upstream`,
      lost: 'nothing: no request reached the upstream while OPEN, no extra probe in HALF_OPEN',
    });
  });
});
