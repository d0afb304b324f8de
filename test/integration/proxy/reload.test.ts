// Hot reload under a steady stream of requests, with zero failed requests: a valid policy is swapped in
// (POST /admin/reload, and the file watcher for in-place writes and rename-over saves), an invalid one is
// rejected whole with FILE:LINE:COL errors while the old policy keeps serving, and the counters and
// breakers of unchanged routes and upstreams carry on. SIGHUP on a child process reloads too.
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  getJson,
  metrics,
  metricValue,
  type PolicyDoc,
  spawnProxy,
  startTestProxy,
  type TestProxy,
  tempDir,
  withEphemeralListeners,
  writePolicy,
  writePolicyByRename,
} from '../../helpers/proxy.js';
import { startPrivateRedis } from '../../helpers/redis-server.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { waitFor } from '../../helpers/wait.js';

const STEADY_LIMIT = 100_000;

interface Load {
  readonly ok: number;
  stop(): Promise<{ ok: number; failures: string[] }>;
}

/** A few workers sending requests back to back until stopped (bounded by time and count). */
function startLoad(url: string, { workers = 4, maxMs = 45_000, maxRequests = 20_000 } = {}): Load {
  let stopped = false;
  let ok = 0;
  let sent = 0;
  const failures: string[] = [];
  const deadline = Date.now() + maxMs;
  const worker = async (): Promise<void> => {
    while (!stopped && Date.now() < deadline && sent < maxRequests) {
      sent++;
      try {
        const r = await request(url);
        await r.body.dump();
        if (r.statusCode === 200) ok++;
        else failures.push(`status ${r.statusCode}`);
      } catch (err) {
        failures.push(String(err));
      }
    }
  };
  const running = Promise.all(Array.from({ length: workers }, worker));
  return {
    get ok() {
      return ok;
    },
    async stop() {
      stopped = true;
      await running;
      return { ok, failures };
    },
  };
}

/** Lets the load run on for a while (at least `n` more successful requests). */
async function moreRequests(load: Load, n = 25): Promise<void> {
  const target = load.ok + n;
  await waitFor(() => load.ok >= target, { what: `${n} more requests under load` });
}

function policy(
  upstreams: { app: string; flaky: string },
  o: { changingHourly: number; flaky2Threshold: number; extraRoute?: boolean },
): PolicyDoc {
  const breaker = { failure_threshold: 2, timeout: '60s', failure_statuses: [503] };
  return {
    version: 1,
    upstreams: {
      app: { url: upstreams.app },
      flaky: { url: upstreams.flaky, breaker },
      flaky2: { url: upstreams.flaky, breaker: { ...breaker, failure_threshold: o.flaky2Threshold } },
    },
    routes: [
      {
        name: 'steady',
        match: { path: '/steady/*' },
        upstream: 'app',
        limits: { hourly: STEADY_LIMIT, daily: STEADY_LIMIT },
      },
      { name: 'tight', match: { path: '/tight' }, upstream: 'app', limits: { hourly: 5, daily: 5 } },
      {
        name: 'changing',
        match: { path: '/changing' },
        upstream: 'app',
        limits: { hourly: o.changingHourly, daily: 100 },
      },
      { name: 'flaky', match: { path: '/flaky' }, upstream: 'flaky' },
      { name: 'flaky2', match: { path: '/flaky2' }, upstream: 'flaky2' },
      ...(o.extraRoute ? [{ name: 'added', match: { path: '/added' }, upstream: 'app' }] : []),
    ],
  };
}

async function send(url: string) {
  const r = await request(url);
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers as Record<string, string | undefined>, text };
}

/** The policy text with the `changing` route's hourly limit spoiled; and where the error must point. */
function invalidText(doc: PolicyDoc, file: string): { text: string; expected: string } {
  const text = stringify(withEphemeralListeners(doc)).replace('hourly: 4\n', 'hourly: lots\n');
  const lines = text.split('\n');
  const line = lines.findIndex((l) => l.includes('hourly: lots'));
  expect(line).toBeGreaterThan(0);
  const col = lines[line]!.indexOf('lots') + 1;
  return {
    text,
    expected: `${file}:${line + 1}:${col}: routes[2].limits.hourly: expected a number, got "lots"`,
  };
}

describe('reload under load', () => {
  let app: TestUpstream;
  let flaky: TestUpstream;
  const proxies: TestProxy[] = [];
  let load: Load | null = null;

  beforeAll(async () => {
    app = await startUpstream();
    flaky = await startUpstream();
    flaky.mode = { kind: 'status', status: 503 };
  });

  afterEach(async () => {
    await load?.stop();
    load = null;
    for (const p of proxies.splice(0)) await p.close();
  });

  afterAll(async () => {
    await app?.close();
    await flaky?.close();
  });

  const urls = () => ({ app: app.url, flaky: flaky.url });

  it('POST /admin/reload swaps a valid policy in and rejects an invalid one whole', async () => {
    const v1 = policy(urls(), { changingHourly: 2, flaky2Threshold: 2 });
    const p = await startTestProxy(v1, { watch: false });
    proxies.push(p);
    load = startLoad(`${p.url}/steady/x`);
    await moreRequests(load);

    // State to carry over: a counter of an unchanged route, two open breakers.
    expect((await send(`${p.url}/tight`)).headers['x-ratelimit-remaining']).toBe('4');
    expect((await send(`${p.url}/tight`)).headers['x-ratelimit-remaining']).toBe('3');
    expect((await send(`${p.url}/changing`)).headers['ratelimit-policy']).toBe(
      '"hourly";q=2;w=3600, "daily";q=100;w=86400',
    );
    for (const path of ['/flaky', '/flaky', '/flaky2', '/flaky2']) await send(`${p.url}${path}`);
    let breakers = (await getJson<Record<string, { state: string }>>(`${p.admin}/admin/breakers`)).body;
    expect(breakers.flaky!.state).toBe('OPEN');
    expect(breakers.flaky2!.state).toBe('OPEN');

    // A valid change: `changing` gets a new limit, flaky2 a new breaker, and a route is added.
    const v2 = policy(urls(), { changingHourly: 4, flaky2Threshold: 3, extraRoute: true });
    await writePolicy(p.file, v2);
    const ok = await getJson(`${p.admin}/admin/reload`, 'POST');
    expect(ok).toEqual({ status: 200, body: { ok: true, version: 2 } });
    expect((await getJson<{ version: number }>(`${p.admin}/admin/config`)).body.version).toBe(2);
    await moreRequests(load);

    expect((await send(`${p.url}/tight`)).headers['x-ratelimit-remaining']).toBe('2');
    const changed = await send(`${p.url}/changing`);
    expect(changed.headers['ratelimit-policy']).toBe('"hourly";q=4;w=3600, "daily";q=100;w=86400');
    expect((await send(`${p.url}/added`)).status).toBe(200);
    breakers = (
      await getJson<Record<string, { state: string; failure_count: number }>>(`${p.admin}/admin/breakers`)
    ).body;
    expect(breakers.flaky).toMatchObject({ state: 'OPEN', failure_count: 2 });
    expect(breakers.flaky2).toMatchObject({ state: 'CLOSED', failure_count: 0 });
    expect(JSON.parse((await send(`${p.url}/flaky`)).text)).toMatchObject({
      upstream: 'flaky',
      state: 'OPEN',
    });

    // An invalid file: 400 with positions, the running policy stays, the failure is counted and logged.
    const bad = invalidText(v2, p.file);
    await writeFile(p.file, bad.text);
    const rejected = await getJson<{ ok: boolean; errors: string[] }>(`${p.admin}/admin/reload`, 'POST');
    expect(rejected.status).toBe(400);
    expect(rejected.body).toEqual({ ok: false, errors: [bad.expected] });
    await moreRequests(load);
    expect((await getJson<{ version: number }>(`${p.admin}/admin/config`)).body.version).toBe(2);
    expect((await send(`${p.url}/changing`)).headers['ratelimit-policy']).toBe(
      '"hourly";q=4;w=3600, "daily";q=100;w=86400',
    );
    expect((await send(`${p.url}/tight`)).headers['x-ratelimit-remaining']).toBe('1');
    const m = await metrics(p.admin);
    expect(metricValue(m, 'config_reloads_total', { result: 'failure' })).toBe(1);
    expect(metricValue(m, 'config_reloads_total', { result: 'success' })).toBe(2);
    expect(p.logs.some((l) => (l.errors as string[] | undefined)?.includes(bad.expected))).toBe(true);

    const result = await load.stop();
    load = null;
    expect(result.failures).toEqual([]);
    // Every steady request was counted in one counter that outlived both reloads.
    const steady = await getJson<{ windows: { remaining: number }[] }>(
      `${p.admin}/admin/limits?route=steady&key=127.0.0.1`,
    );
    expect(steady.body.windows[0]!.remaining).toBe(STEADY_LIMIT - result.ok);
  });

  it('the watcher picks up in-place writes and rename-over saves, and skips invalid ones', async () => {
    const p = await startTestProxy(policy(urls(), { changingHourly: 2, flaky2Threshold: 2 }), {
      watch: true,
    });
    proxies.push(p);
    const version = async () => (await getJson<{ version: number }>(`${p.admin}/admin/config`)).body.version;
    const changingPolicy = async () => (await send(`${p.url}/changing`)).headers['ratelimit-policy'];
    load = startLoad(`${p.url}/steady/y`);
    await moreRequests(load);
    expect((await send(`${p.url}/tight`)).headers['x-ratelimit-remaining']).toBe('4');

    // Saved by rename: a new inode, which a watch on the old file would miss.
    const v2 = policy(urls(), { changingHourly: 4, flaky2Threshold: 2 });
    await writePolicyByRename(p.file, v2);
    await waitFor(async () => (await version()) === 2, { what: 'the renamed policy to load' });
    expect(await changingPolicy()).toBe('"hourly";q=4;w=3600, "daily";q=100;w=86400');
    expect((await send(`${p.url}/tight`)).headers['x-ratelimit-remaining']).toBe('3');
    await moreRequests(load);

    // An invalid save, by rename too: counted and logged, nothing changes.
    const bad = invalidText(v2, p.file);
    await writePolicyByRename(p.file, bad.text);
    await waitFor(
      async () => metricValue(await metrics(p.admin), 'config_reloads_total', { result: 'failure' }) === 1,
      {
        what: 'the invalid save to be rejected',
      },
    );
    expect(await version()).toBe(2);
    expect(await changingPolicy()).toBe('"hourly";q=4;w=3600, "daily";q=100;w=86400');
    expect(p.logs.some((l) => (l.errors as string[] | undefined)?.includes(bad.expected))).toBe(true);
    await moreRequests(load);

    // Written in place.
    await writePolicy(p.file, policy(urls(), { changingHourly: 3, flaky2Threshold: 2 }));
    await waitFor(async () => (await version()) === 3, { what: 'the rewritten policy to load' });
    expect(await changingPolicy()).toBe('"hourly";q=3;w=3600, "daily";q=100;w=86400');
    expect((await send(`${p.url}/tight`)).headers['x-ratelimit-remaining']).toBe('2');
    await moreRequests(load);

    const result = await load.stop();
    load = null;
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(0);
  });

  it('SIGHUP reloads a proxy process', async () => {
    // The policy is reached through a symlink whose target lives in another directory, so the watcher
    // (which watches the link's directory) stays quiet: only the signal can cause the reload.
    const dir = await tempDir('sighup');
    const target = join(dir, 'real.yaml');
    const link = join(dir, 'link', 'policy.yaml');
    await writePolicy(target, policy(urls(), { changingHourly: 2, flaky2Threshold: 2 }));
    await mkdir(join(dir, 'link'));
    await symlink(target, link);
    const child = await spawnProxy(link);
    try {
      const version = async () =>
        (await getJson<{ version: number }>(`${child.admin}/admin/config`)).body.version;
      expect(await version()).toBe(1);
      load = startLoad(`${child.url}/steady/z`, { workers: 2 });
      await moreRequests(load);
      expect((await send(`${child.url}/tight`)).headers['x-ratelimit-remaining']).toBe('4');

      await writePolicy(target, policy(urls(), { changingHourly: 4, flaky2Threshold: 2 }));
      expect(await readFile(link, 'utf8')).toContain('hourly: 4');
      child.child.kill('SIGHUP');
      await waitFor(async () => (await version()) === 2, { what: 'the SIGHUP reload' });
      expect((await send(`${child.url}/changing`)).headers['ratelimit-policy']).toBe(
        '"hourly";q=4;w=3600, "daily";q=100;w=86400',
      );
      expect((await send(`${child.url}/tight`)).headers['x-ratelimit-remaining']).toBe('3');

      await writeFile(target, 'routes: [\n');
      child.child.kill('SIGHUP');
      await waitFor(
        async () =>
          metricValue(await metrics(child.admin), 'config_reloads_total', { result: 'failure' }) === 1,
        { what: 'the invalid SIGHUP reload to be counted' },
      );
      expect(await version()).toBe(2);
      expect(child.output()).toMatch(/config reload rejected/);
      await moreRequests(load);

      const result = await load.stop();
      load = null;
      expect(result.failures).toEqual([]);
    } finally {
      await child.kill();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('reloading the store section', () => {
  it('switches to the new store and releases the old connection; close releases the last one', async () => {
    const redis = await startPrivateRedis();
    const upstream = await startUpstream();
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    const doc = (prefix: string): PolicyDoc => ({
      version: 1,
      store: { type: 'redis', url: redis.url, prefix, timeout: '1s' },
      upstreams: { app: { url: upstream.url } },
      routes: [{ name: 'r', match: { path: '/r' }, upstream: 'app', limits: { hourly: 10, daily: 10 } }],
    });
    // Connections other than `admin` itself.
    const proxyClients = async () =>
      String(await admin.client('LIST'))
        .trim()
        .split('\n').length - 1;
    let p: TestProxy | null = await startTestProxy(doc('first:'));
    try {
      expect((await send(`${p.url}/r`)).status).toBe(200);
      expect(await proxyClients()).toBe(1);
      expect(await admin.keys('first:*')).not.toEqual([]);

      await writePolicy(p.file, doc('second:'));
      expect(await p.proxy.reload()).toEqual({ ok: true, version: 2 });
      const r = await send(`${p.url}/r`);
      expect(r.status).toBe(200);
      // A new store: its counters start afresh, under the new prefix.
      expect(r.headers['x-ratelimit-remaining']).toBe('9');
      expect(await admin.keys('second:*')).not.toEqual([]);
      await waitFor(async () => (await proxyClients()) === 1, { what: 'the old store connection to close' });

      await p.close();
      p = null;
      await waitFor(async () => (await proxyClients()) === 0, { what: 'the store connection to close' });
    } finally {
      await p?.close();
      admin.disconnect();
      await upstream.close();
      await redis.stop();
    }
  });
});
