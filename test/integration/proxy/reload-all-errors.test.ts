// A reload reports every error of the new file at once, as `floodgate validate` does: POST /admin/reload
// answers 400 with the whole list, and a save the watcher picks up logs the same list. The running policy
// stays throughout.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getJson,
  metrics,
  metricValue,
  startTestProxy,
  type TestProxy,
  writePolicyByRename,
} from '../../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { waitFor } from '../../helpers/wait.js';

const FIXTURE = 'test/fixtures/config/every-stage-in-one-run.yaml';

type Reload = { ok: boolean; errors?: string[] };

describe('reload reports every error of a file', () => {
  let upstream: TestUpstream;
  let p: TestProxy;

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy(
      {
        store: { type: 'memory' },
        upstreams: { app: { url: upstream.url } },
        routes: [{ name: 'app', match: { path: '/*' }, upstream: 'app', limits: { hourly: 1000 } }],
      },
      // No variable of the fixture is set, whatever the caller's shell holds.
      { watch: true, env: {} },
    );
  });

  afterAll(async () => {
    await p?.close();
    await upstream?.close();
  });

  const rejections = () =>
    p.logs.filter((l) => l.msg === 'config reload rejected; the running policy stays').map((l) => l.errors);

  it('from the watcher and from POST /admin/reload, the same full list; the old policy keeps serving', async () => {
    const reloaded = async () =>
      metricValue(await metrics(p.admin), 'config_reloads_total', { result: 'success' });
    const successes = await reloaded();
    const text = await readFile(FIXTURE, 'utf8');
    // The fixture's errors, labelled with the file the proxy reads.
    const expected = [...text.matchAll(/^# expect: (.*)$/gm)].map((m) => m[1]!.replace(FIXTURE, p.file));
    expect(expected).toHaveLength(3);

    // By rename, so the watcher never reads a half-written file.
    await writePolicyByRename(p.file, text);
    const watched = await waitFor(() => rejections()[0] as string[] | undefined, {
      what: 'the watcher to reject the save',
    });
    expect(watched).toEqual(expected);

    const reload = await getJson<Reload>(`${p.admin}/admin/reload`, 'POST');
    expect(reload.status).toBe(400);
    expect(reload.body).toEqual({ ok: false, errors: expected });
    for (const errors of rejections()) expect(errors).toEqual(expected);

    const config = await getJson<{ version: number }>(`${p.admin}/admin/config`);
    expect(config.body.version).toBe(1);
    const served = await getJson(`${p.url}/still-served`);
    expect(served.status).toBe(200);
    expect(await reloaded()).toBe(successes);
  });

  it('a file with more than 20 errors answers the first 20 in file order and a count of the rest', async () => {
    const routes = Array.from(
      { length: 30 },
      (_, i) => `  - { name: r${i}, match: { path: /r${i} }, upstream: nope, max_body: lots }`,
    );
    await writePolicyByRename(
      p.file,
      `upstreams:\n  app: { url: "${upstream.url}" }\nroutes:\n${routes.join('\n')}\n`,
    );
    const reload = await getJson<Reload>(`${p.admin}/admin/reload`, 'POST');
    expect(reload.status).toBe(400);
    const errors = reload.body.errors ?? [];
    expect(errors).toHaveLength(21);
    expect(errors[0]).toBe(`${p.file}:4:49: routes[0].upstream: unknown upstream "nope" (defined: app)`);
    expect(errors[1]!.startsWith(`${p.file}:4:65: routes[0].max_body: invalid size "lots"`)).toBe(true);
    expect(errors[19]!.startsWith(`${p.file}:13:65: routes[9].max_body: invalid size "lots"`)).toBe(true);
    expect(errors[20]).toBe(`${p.file}:14:51: … and 40 more errors`);
  });
});
