// `floodgate validate` and start-up agree: a policy the loader accepts starts a proxy that serves, even
// at the edges of every range the schema allows. (A billion a day with sliding-counter used to pass
// validate and then kill start-up with a RangeError and a stack trace.)
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../proxy/config/load.js';
import { startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

const MAX_SAFE_DAYS = `${Math.floor(Number.MAX_SAFE_INTEGER / 86_400_000)}d`;

describe('a policy that validates starts', () => {
  let upstream: TestUpstream;
  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(() => upstream?.close());

  const policies: [string, (url: string) => Record<string, unknown>][] = [
    [
      'a billion a day, sliding-counter',
      (url) => ({
        upstreams: { app: { url } },
        routes: [
          {
            name: 'big',
            match: { path: '/*' },
            upstream: 'app',
            limits: { hourly: 10_000_000, daily: 1_000_000_000, algorithm: 'sliding-counter' },
          },
        ],
      }),
    ],
    [
      'every range at its edge',
      (url) => ({
        store: { type: 'memory', timeout: '24d', max_keys: 1 },
        upstreams: {
          app: {
            url,
            timeouts: { connect: '24d', response: '24d', idle: '24d' },
            breaker: {
              timeout: MAX_SAFE_DAYS,
              failure_rate: { threshold: 1, window: MAX_SAFE_DAYS, minimum_calls: Number.MAX_SAFE_INTEGER },
              failure_threshold: Number.MAX_SAFE_INTEGER,
              half_open_max_calls: Number.MAX_SAFE_INTEGER,
            },
          },
        },
        routes: [
          {
            name: 'edge',
            match: { path: '/*' },
            upstream: 'app',
            max_body: Number.MAX_SAFE_INTEGER,
            limits: {
              algorithm: 'sliding-counter',
              windows: Array.from({ length: 32 }, (_, i) => ({
                name: `w${i}`,
                limit: Number.MAX_SAFE_INTEGER,
                per: i === 0 ? '1ms' : MAX_SAFE_DAYS,
              })),
            },
          },
        ],
      }),
    ],
    [
      'host and header conditions and a rejection at their caps',
      (url) => ({
        upstreams: { app: { url } },
        routes: [
          {
            name: 'edge',
            match: {
              path: '/*',
              // The request below is sent with Host 127.0.0.1:PORT and X-H0 … X-H15: go.
              host: [...Array.from({ length: 63 }, (_, i) => `*.h${i}.${'a'.repeat(60)}.test`), '127.0.0.1'],
              headers: Object.fromEntries(
                Array.from({ length: 16 }, (_, i) => [
                  `X-H${i}`,
                  Array.from({ length: 64 }, (_, j) => (j === 63 ? 'go' : `${'v'.repeat(100)}${j}`)),
                ]),
              ),
            },
            upstream: 'app',
            limits: {
              hourly: Number.MAX_SAFE_INTEGER,
              rejection: {
                status: 599,
                body: { e: `${'x'.repeat(4_000)}{{limit}}{{window}}{{retry_after}}{{route}}` },
                headers: Object.fromEntries(
                  Array.from({ length: 16 }, (_, i) => [`X-R${i}`, `${'r'.repeat(1000)}{{window}}`]),
                ),
              },
            },
          },
        ],
      }),
    ],
  ];

  it.each(policies)('%s: validates, starts and serves', async (_, make) => {
    const doc = make(upstream.url);
    expect(parsePolicy(JSON.stringify(doc), 'p.yaml', {}).ok).toBe(true);
    let proxy: TestProxy | undefined;
    try {
      proxy = await startTestProxy(doc);
      const headers = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`x-h${i}`, 'go']));
      const r = await request(`${proxy.url}/anything`, { headers });
      await r.body.dump();
      expect(r.statusCode).toBe(200);
      expect(r.headers['ratelimit-policy']).toBeDefined();
    } finally {
      await proxy?.close();
    }
  });
});
