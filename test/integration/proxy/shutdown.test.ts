// SIGTERM on a proxy process: it stops accepting new connections, lets an in-flight request finish,
// then exits 0.
import { rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProxy, spawnProxy, tempDir, writePolicy } from '../../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { waitFor } from '../../helpers/wait.js';

function refusesConnections(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = new Socket();
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
    s.connect(Number(port), hostname);
  });
}

describe('graceful shutdown', () => {
  let upstream: TestUpstream;
  let dir: string;
  let proxy: ChildProxy | undefined;

  beforeAll(async () => {
    upstream = await startUpstream();
    dir = await tempDir('shutdown');
  });

  afterAll(async () => {
    await proxy?.kill();
    await upstream?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('finishes an in-flight request after SIGTERM, then exits 0', async () => {
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, {
      version: 1,
      upstreams: { app: { url: upstream.url } },
      routes: [
        { name: 'slow', match: { path: '/slow' }, upstream: 'app', limits: { hourly: 10, daily: 10 } },
      ],
    });
    proxy = await spawnProxy(file);
    upstream.mode = { kind: 'hold' };
    const inFlight = request(`${proxy.url}/slow`).then(async (r) => ({
      status: r.statusCode,
      body: await r.body.json(),
    }));
    await waitFor(() => upstream.held === 1, { what: 'the request at the upstream' });

    proxy.child.kill('SIGTERM');
    // Draining: new connections are refused while the held request is still open.
    await waitFor(() => refusesConnections(proxy!.url), { what: 'the listener to close' });
    expect(proxy.child.exitCode).toBeNull();
    expect(upstream.held).toBe(1);

    upstream.release();
    expect(await inFlight).toEqual({ status: 200, body: { path: '/slow', method: 'GET', bytes: 0 } });
    const exit = await proxy.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(proxy.output()).toMatch(/shutting down/);
  });
});
