// `workers: 2`: one proxy to the outside, run as a cluster of real processes. Every request below goes
// on a fresh connection. The first cluster runs with round-robin scheduling, so the workers take
// connections in turn and each one's share is known; the second with the default (the kernel picks),
// and sends until both have served. Either way the tests check from the workers' own log lines that
// both of them served, so a result that only one worker could produce (limits or a breaker counted
// per worker) would show.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProxy, type PolicyDoc, spawnProxy, tempDir, writePolicy } from '../../helpers/proxy.js';
import { deletePrefix, newRedis, REDIS_URL, uniquePrefix } from '../../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { waitFor } from '../../helpers/wait.js';

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** One request on a connection of its own (`reset`: closed after the answer). */
async function send(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const r = await request(url, { headers, reset: true });
  const text = await r.body.text();
  return { status: r.statusCode, body: text.startsWith('{') ? JSON.parse(text) : {} };
}

async function sendMany(url: string, n: number, headers: Record<string, string> = {}): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) statuses.push((await send(url, headers)).status);
  return statuses;
}

function logLines(proxy: ChildProxy): Record<string, unknown>[] {
  return proxy
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The pids of the workers listening now: those that said so and did not exit since. */
function workerPids(proxy: ChildProxy): number[] {
  const pids = new Set<number>();
  for (const l of logLines(proxy)) {
    if (l.msg === 'worker listening') pids.add(l.pid as number);
    if (l.msg === 'worker exited; starting another') pids.delete(l.worker_pid as number);
  }
  return [...pids];
}

/** The processes that logged a rejection on `route`. */
function rejectingPids(proxy: ChildProxy, route: string): Set<number> {
  return new Set(
    logLines(proxy)
      .filter((l) => l.msg === 'rate limit exceeded' && l.route === route)
      .map((l) => l.pid as number),
  );
}

function count(statuses: number[], status: number): number {
  return statuses.filter((s) => s === status).length;
}

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('workers: 2 with the memory store, round robin', () => {
  let app: TestUpstream;
  let failing: TestUpstream;
  let dir: string;
  let file: string;
  let proxy: ChildProxy;

  const policy = (hourly: number): PolicyDoc => ({
    workers: 2,
    // The tests' client is the trusted proxy here: it sets the cost of the `weighted` route.
    client_ip: { trusted_proxies: ['127.0.0.1/32'] },
    upstreams: {
      app: { url: app.url },
      flaky: {
        url: failing.url,
        breaker: { failure_threshold: 4, timeout: '1h', failure_statuses: [503] },
      },
    },
    routes: [
      {
        name: 'limited',
        match: { path: '/limited' },
        upstream: 'app',
        limits: { key: 'header:X-Key', hourly, daily: 1000 },
      },
      {
        name: 'costly',
        match: { path: '/costly' },
        upstream: 'app',
        limits: { key: 'header:X-Key', hourly: 10, cost: 3 },
      },
      {
        name: 'weighted',
        match: { path: '/weighted' },
        upstream: 'app',
        limits: { key: 'header:X-Key', hourly: 20, cost: { header: 'X-Cost', max: 10 } },
      },
      { name: 'flaky', match: { path: '/flaky' }, upstream: 'flaky' },
      { name: 'slow', match: { path: '/slow' }, upstream: 'app' },
    ],
  });

  beforeAll(async () => {
    app = await startUpstream();
    failing = await startUpstream();
    failing.mode = { kind: 'status', status: 503 };
    dir = await tempDir('workers');
    file = join(dir, 'policy.yaml');
    await writePolicy(file, policy(10));
    proxy = await spawnProxy(file, { NODE_CLUSTER_SCHED_POLICY: 'rr' });
    expect(workerPids(proxy)).toHaveLength(2);
  });

  afterAll(async () => {
    await proxy?.kill();
    await app?.close();
    await failing?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps a limit exact across both workers: 10 of 30 pass, and both workers refused some', async () => {
    const statuses = await sendMany(`${proxy.url}/limited`, 30, { 'x-key': 'alice' });
    expect(count(statuses, 200)).toBe(10);
    expect(count(statuses, 429)).toBe(20);
    expect(statuses.slice(0, 10).every((s) => s === 200)).toBe(true);
    const pids = workerPids(proxy);
    await waitFor(() => pids.every((pid) => rejectingPids(proxy, 'limited').has(pid)), {
      what: 'a rejection logged by each worker',
    });
    // The admin API reads the same counters the workers decide with.
    const limits = await request(`${proxy.admin}/admin/limits?route=limited&key=alice`);
    expect(await limits.body.json()).toMatchObject({
      windows: [
        { name: 'hourly', limit: 10, remaining: 0 },
        { name: 'daily', limit: 1000, remaining: 990 },
      ],
    });
  });

  it('keeps a fixed cost exact across both workers: 3 of 10 pass (9 units of 10), both workers refused', async () => {
    const statuses = await sendMany(`${proxy.url}/costly`, 10, { 'x-key': 'carol' });
    expect(statuses).toEqual([200, 200, 200, 429, 429, 429, 429, 429, 429, 429]);
    const pids = workerPids(proxy);
    await waitFor(() => pids.every((pid) => rejectingPids(proxy, 'costly').has(pid)), {
      what: 'a rejection logged by each worker',
    });
    const limits = await request(`${proxy.admin}/admin/limits?route=costly&key=carol`);
    expect(await limits.body.json()).toMatchObject({
      windows: [{ name: 'hourly', limit: 10, remaining: 1 }],
    });
  });

  it('keeps header costs exact across both workers, each request counted by its own cost', async () => {
    const url = `${proxy.url}/weighted`;
    const costs = [7, 7, 7, 6, 1, 3];
    const statuses: number[] = [];
    for (const cost of costs)
      statuses.push((await send(url, { 'x-key': 'dave', 'x-cost': String(cost) })).status);
    // 7 + 7 = 14; 7 more would be 21; 6 makes exactly 20; then nothing fits.
    expect(statuses).toEqual([200, 200, 429, 200, 429, 429]);
    const limits = await request(`${proxy.admin}/admin/limits?route=weighted&key=dave`);
    expect(await limits.body.json()).toMatchObject({
      windows: [{ name: 'hourly', limit: 20, remaining: 0 }],
    });
  });

  it('sums the workers in /metrics', async () => {
    const r = await request(`${proxy.admin}/metrics`);
    const text = await r.body.text();
    expect(metricValue(text, 'rate_limit_requests_total{endpoint="limited",decision="allowed"}')).toBe(10);
    expect(metricValue(text, 'rate_limit_requests_total{endpoint="limited",decision="limited"}')).toBe(20);
    expect(metricValue(text, 'proxy_requests_total{route="limited",upstream="app",status="429"}')).toBe(20);
    expect(metricValue(text, 'config_reloads_total{result="success"}')).toBe(1);
  });

  it('opens a breaker on failures spread over both workers, and both then answer it is open', async () => {
    // Each worker sees 2 of the 4 failures: a breaker per worker (threshold 4) would still be closed.
    const failures = await sendMany(`${proxy.url}/flaky`, 4);
    expect(failures).toEqual([503, 503, 503, 503]);
    expect(failing.hits).toBe(4);
    // The fourth outcome reaches the primary just after its answer reached the client.
    await waitFor(
      async () => {
        const r = await request(`${proxy.admin}/admin/breakers`);
        return ((await r.body.json()) as Record<string, { state: string }>).flaky?.state === 'OPEN';
      },
      { what: 'the breaker to open' },
    );
    const after = await sendMany(`${proxy.url}/flaky`, 6);
    expect(after).toEqual([503, 503, 503, 503, 503, 503]);
    expect(failing.hits).toBe(4);
    const breakers = await request(`${proxy.admin}/admin/breakers`);
    expect(await breakers.body.json()).toMatchObject({ flaky: { state: 'OPEN', failure_count: 4 } });
    const metrics = await (await request(`${proxy.admin}/metrics`)).body.text();
    expect(metricValue(metrics, 'circuit_breaker_failures_total{service="flaky"}')).toBe(4);
    expect(metricValue(metrics, 'circuit_breaker_state{service="flaky"}')).toBe(1);

    // An admin reset reaches both workers too.
    const reset = await request(`${proxy.admin}/admin/breakers/flaky/reset`, { method: 'POST' });
    expect(reset.statusCode).toBe(200);
    await reset.body.dump();
    failing.mode = { kind: 'ok' };
    expect(await sendMany(`${proxy.url}/flaky`, 2)).toEqual([200, 200]);
  });

  it('applies a reload in every worker (SIGHUP)', async () => {
    await writePolicy(file, policy(12));
    proxy.child.kill('SIGHUP');
    await waitFor(() => logLines(proxy).some((l) => l.msg === 'config reloaded'), { what: 'the reload' });
    // The route's limits changed, so its counters start afresh: 12 pass, spread over both workers.
    const statuses = await sendMany(`${proxy.url}/limited`, 16, { 'x-key': 'bob' });
    expect(count(statuses, 200)).toBe(12);
    const config = await request(`${proxy.admin}/admin/config`);
    // The primary also watches the file: its own reload of the same change may have landed by now (3).
    const { version } = (await config.body.json()) as { version: number };
    expect([2, 3]).toContain(version);
  });

  it('stops its workers when the primary dies', async () => {
    const pids = workerPids(proxy);
    expect(pids).toHaveLength(2);
    proxy.child.kill('SIGKILL');
    await proxy.exited;
    const gone = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    };
    await waitFor(() => pids.every(gone), { what: 'the orphaned workers to exit' });
  });
});

describe('workers: 2 with the Redis store, default scheduling', () => {
  const prefix = uniquePrefix('workers');
  let app: TestUpstream;
  let dir: string;
  let proxy: ChildProxy;

  beforeAll(async () => {
    app = await startUpstream();
    dir = await tempDir('workers-redis');
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, {
      workers: 2,
      store: { type: 'redis', url: REDIS_URL, prefix },
      upstreams: { app: { url: app.url } },
      routes: [
        {
          name: 'limited',
          match: { path: '/limited' },
          upstream: 'app',
          limits: { key: 'header:X-Key', hourly: 7, daily: 1000 },
        },
        { name: 'slow', match: { path: '/slow' }, upstream: 'app' },
      ],
    });
    proxy = await spawnProxy(file);
  });

  afterAll(async () => {
    await proxy?.kill();
    await app?.close();
    await rm(dir, { recursive: true, force: true });
    const redis = newRedis();
    await deletePrefix(redis, prefix);
    redis.disconnect();
  });

  it('keeps a limit exact across both workers: 7 pass, however many are sent', async () => {
    const pids = workerPids(proxy);
    expect(pids).toHaveLength(2);
    const statuses: number[] = [];
    // Which worker takes a connection is the kernel's choice: send until each has refused one.
    await waitFor(
      async () => {
        statuses.push(...(await sendMany(`${proxy.url}/limited`, 10, { 'x-key': 'carol' })));
        return pids.every((pid) => rejectingPids(proxy, 'limited').has(pid));
      },
      { timeoutMs: 20_000, what: 'a rejection logged by each worker' },
    );
    expect(count(statuses, 200)).toBe(7);
    expect(statuses.slice(0, 7)).toEqual([200, 200, 200, 200, 200, 200, 200]);
    expect(count(statuses, 429)).toBe(statuses.length - 7);
  });

  it('replaces a worker killed with SIGKILL under load, while the other keeps answering', async () => {
    const victim = workerPids(proxy)[0]!;
    let stop = false;
    const results: { at: number; ok: boolean }[] = [];
    const load = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (!stop) {
          const ok = await send(`${proxy.url}/slow`).then(
            (a) => a.status === 200,
            () => false,
          );
          results.push({ at: Date.now(), ok });
        }
      }),
    );
    await waitFor(() => results.filter((r) => r.ok).length >= 50, { what: 'load to be flowing' });
    process.kill(victim, 'SIGKILL');
    const killedAt = Date.now();
    await waitFor(() => logLines(proxy).some((l) => l.msg === 'worker exited; starting another'), {
      what: 'the primary to see the worker die',
    });
    await waitFor(
      () => {
        const now = workerPids(proxy);
        return now.length === 2 && !now.includes(victim);
      },
      { timeoutMs: 20_000, what: 'a replacement worker listening' },
    );
    // Now the cluster has two workers again; the load goes on for a while on both.
    const settled = results.length;
    await waitFor(() => results.length >= settled + 50, { what: 'load after the replacement' });
    stop = true;
    await load;
    const afterKill = results.filter((r) => r.at > killedAt);
    // Only requests in flight on the killed worker may fail (at most one per load loop).
    expect(afterKill.filter((r) => !r.ok).length).toBeLessThanOrEqual(8);
    expect(afterKill.filter((r) => r.ok).length).toBeGreaterThanOrEqual(50);
    expect(logLines(proxy).find((l) => l.msg === 'worker exited; starting another')).toMatchObject({
      worker_pid: victim,
      signal: 'SIGKILL',
    });
  });

  it('drains every worker on SIGTERM: an in-flight request finishes, then the cluster exits 0', async () => {
    app.mode = { kind: 'hold' };
    const inFlight = request(`${proxy.url}/slow`).then((r) => r.statusCode);
    await waitFor(() => app.held === 1, { what: 'the request at the upstream' });
    proxy.child.kill('SIGTERM');
    await waitFor(() => logLines(proxy).some((l) => l.msg === 'shutting down: draining in-flight requests'), {
      what: 'the drain to start',
    });
    expect(proxy.child.exitCode).toBeNull();
    app.release();
    expect(await inFlight).toBe(200);
    expect(await proxy.exited).toEqual({ code: 0, signal: null });
    for (const pid of workerPids(proxy)) expect(() => process.kill(pid, 0)).toThrow();
  });
});
