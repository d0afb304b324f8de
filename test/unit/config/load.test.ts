import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../../core/redact-url.js';
import { type LoadResult, loadPolicyFile, parsePolicy, redactPolicy } from '../../../proxy/config/load.js';
import type { Policy } from '../../../proxy/config/schema.js';
import { sectionHash } from '../../../proxy/config/section-hash.js';
import { limiterScope, poolHash } from '../../../proxy/http/compile-runtime.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

const MINIMAL = `
upstreams:
  backend: { url: http://127.0.0.1:8000 }
routes:
  - name: api
    match: { path: /api/* }
    upstream: backend
`;

/** Just enough of a mutable view of a policy to try to mutate it. */
interface Mutable {
  version: number;
  routes: { match: { path: string } }[] & { push(x: unknown): void };
  upstreams: Record<string, { breaker: { failureStatuses: number[] } }>;
}

function valid(result: LoadResult): Policy {
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.policy;
}

function errors(result: LoadResult): readonly string[] {
  if (result.ok) throw new Error('expected the policy to be rejected');
  return result.errors;
}

describe('example policies', () => {
  it('config/proxy.yaml is valid, with Redis by default and memory on request', async () => {
    const policy = valid(await loadPolicyFile(`${root}config/proxy.yaml`, {}));
    expect(policy.store).toEqual({
      type: 'redis',
      url: 'redis://127.0.0.1:6379',
      prefix: 'floodgate:',
      timeoutMs: 50,
      onError: 'local',
      cluster: false,
      maxKeys: 100_000,
      refusalCache: false,
    });
    expect(policy.routes.map((r) => r.name)).toEqual([
      'transcribe',
      'status',
      'result',
      'jobs',
      'openai-transcriptions',
      'openai-models',
    ]);
    expect(policy.routes[0]!.limits!.windows).toEqual([
      { name: 'hourly', limit: 100, windowMs: 3_600_000 },
      { name: 'daily', limit: 1000, windowMs: 86_400_000 },
      { name: 'burst', limit: 10, windowMs: 60_000 },
    ]);
    expect(policy.routes[0]!.maxBodyBytes).toBe(200 * 1024 * 1024);

    const memory = valid(
      await loadPolicyFile(`${root}config/proxy.yaml`, {
        FLOODGATE_STORE: 'memory',
        REDIS_URL: 'redis://r:6380',
      }),
    );
    expect(memory.store.type).toBe('memory');
    expect(memory.store.url).toBe('redis://r:6380');
  });

  it('config/api-keys.yaml is valid: header keys, extra windows, shadow mode', async () => {
    const policy = valid(await loadPolicyFile(`${root}config/api-keys.yaml`, {}));
    const byName = Object.fromEntries(policy.routes.map((r) => [r.name, r]));
    expect(byName.health!.limits).toBeNull();
    expect(byName.search!.limits).toEqual({
      key: [{ type: 'header', name: 'x-api-key' }],
      windows: [
        { name: 'hourly', limit: 1000, windowMs: 3_600_000 },
        { name: 'daily', limit: 10_000, windowMs: 86_400_000 },
        { name: 'burst', limit: 20, windowMs: 10_000 },
        { name: 'minute', limit: 60, windowMs: 60_000 },
      ],
      algorithm: 'sliding-log',
      shadow: false,
      plans: null,
      allowlist: null,
      cost: { type: 'fixed', units: 1 },
      clientHeaders: 'both',
      rejection: { status: 429, body: null, headers: {} },
    });
    expect(byName.reports!.limits!.shadow).toBe(true);
    expect(byName.uploads!.limits!.algorithm).toBe('sliding-counter');
    expect(byName.uploads!.match.methods).toEqual(['POST', 'PUT']);
    expect(policy.upstreams.api!.breaker.failureRate).toEqual({
      threshold: 0.5,
      windowMs: 60_000,
      minimumCalls: 20,
    });
    expect(policy.clientIp.trustedProxies.map((c) => c.cidr)).toEqual(['10.0.0.0/8', 'fd00::/8']);
  });
});

describe('defaults', () => {
  it('fills every key the policy leaves out', () => {
    const policy = valid(parsePolicy(MINIMAL, 'p.yaml', {}));
    expect(policy).toEqual({
      version: 1,
      listen: { host: '127.0.0.1', port: 8080 },
      workers: 1,
      admin: { listen: { host: '127.0.0.1', port: 9090 }, token: null },
      store: {
        type: 'memory',
        url: 'redis://127.0.0.1:6379',
        prefix: 'floodgate:',
        timeoutMs: 50,
        onError: 'local',
        cluster: false,
        maxKeys: 100_000,
        refusalCache: false,
      },
      clientIp: { trustedProxies: [], ipv6Prefix: 64 },
      allowlist: { ips: [] },
      upstreams: {
        backend: {
          name: 'backend',
          url: 'http://127.0.0.1:8000',
          timeouts: { connectMs: 2_000, responseMs: 60_000, idleMs: 30_000 },
          breaker: {
            failureThreshold: 5,
            successThreshold: 2,
            timeoutMs: 60_000,
            halfOpenMaxCalls: 3,
            failureStatuses: [502, 503, 504],
            failureRate: null,
          },
        },
      },
      routes: [
        {
          name: 'api',
          match: { pattern: '/api/*', path: '/api/', prefix: true, methods: null, host: null, headers: null },
          upstream: 'backend',
          maxBodyBytes: null,
          limits: null,
        },
      ],
    });
  });

  it('limits default to the client ip, sliding-log and enforcing', () => {
    const text = MINIMAL.replace('upstream: backend', 'upstream: backend\n    limits: { daily: 10 }');
    expect(valid(parsePolicy(text, 'p.yaml', {})).routes[0]!.limits).toEqual({
      key: [{ type: 'ip' }],
      windows: [{ name: 'daily', limit: 10, windowMs: 86_400_000 }],
      algorithm: 'sliding-log',
      shadow: false,
      plans: null,
      allowlist: null,
      cost: { type: 'fixed', units: 1 },
      clientHeaders: 'both',
      rejection: { status: 429, body: null, headers: {} },
    });
  });

  it('cost: a fixed number of units, or a header with its default (1) and its max', () => {
    const cost = (yaml: string) =>
      valid(
        parsePolicy(
          MINIMAL.replace(
            'upstream: backend',
            `upstream: backend
    limits: { hourly: 100, cost: ${yaml} }`,
          ),
          'p.yaml',
          {},
        ),
      ).routes[0]!.limits!.cost;
    expect(cost('5')).toEqual({ type: 'fixed', units: 5 });
    expect(cost('100')).toEqual({ type: 'fixed', units: 100 });
    expect(cost('{ header: X-Request-Cost, max: 100 }')).toEqual({
      type: 'header',
      name: 'x-request-cost',
      default: 1,
      max: 100,
    });
    expect(cost('{ header: X-Request-Cost, default: 3, max: 3 }')).toMatchObject({ default: 3, max: 3 });
  });

  it('cost: every wrong value is an error at its own position, saying why', () => {
    const errors = (yaml: string) => {
      const r = parsePolicy(
        MINIMAL.replace(
          'upstream: backend',
          `upstream: backend
    limits: { hourly: 100, cost: ${yaml} }`,
        ),
        'p.yaml',
        {},
      );
      return r.ok ? [] : r.errors.map((e) => e.replace(/^p\.yaml:\d+:/, ''));
    };
    const at = (col: number, where: string, message: string) => [
      `${col}: routes[0].limits.${where}: ${message}`,
    ];
    const whole = (got: string) =>
      `cost must be a whole number of at least 1 (the units each request counts), got ${got}`;
    const either = (got: string) =>
      `expected a whole number of at least 1 (the cost of every request) or { header, default, max }, got ${got}`;
    expect(errors('0')).toEqual(at(34, 'cost', whole('0')));
    expect(errors('-3')).toEqual(at(34, 'cost', whole('-3')));
    expect(errors('2.5')).toEqual(at(34, 'cost', whole('2.5')));
    expect(errors('1e3')).toEqual(
      at(
        34,
        'cost',
        "cost 1000 is more than hourly's limit of 100; a request that costs more than a window's limit could never be admitted",
      ),
    );
    expect(errors('"5"')).toEqual(at(34, 'cost', either('"5"')));
    expect(errors('[5]')).toEqual(at(34, 'cost', either('a list')));
    expect(errors('{ header: X-Cost, max: 101 }')).toEqual(
      at(
        57,
        'cost.max',
        "max 101 is more than hourly's limit of 100; a request that costs more than a window's limit could never be admitted",
      ),
    );
    expect(errors('{ header: X-Cost, default: 0, max: 5 }')).toEqual(
      at(61, 'cost.default', 'must be at least 1, got 0'),
    );
    expect(errors('{ header: "X Cost", max: 5 }')).toEqual(
      at(44, 'cost.header', 'invalid header name "X Cost"'),
    );
    expect(errors('{ header: X-Cost }')).toEqual(at(28, 'cost', 'missing required key "max"'));
  });

  it('failure_rate fills its window and minimum_calls', () => {
    const text = MINIMAL.replace(
      '{ url: http://127.0.0.1:8000 }',
      '{ url: http://127.0.0.1:8000, breaker: { failure_rate: { threshold: 0.25 } } }',
    );
    expect(valid(parsePolicy(text, 'p.yaml', {})).upstreams.backend!.breaker.failureRate).toEqual({
      threshold: 0.25,
      windowMs: 60_000,
      minimumCalls: 20,
    });
  });
});

describe('normalization', () => {
  it('units, addresses, methods and header names', () => {
    const text = `
listen: "[::1]:0"
admin: { listen: localhost:9999 }
client_ip: { trusted_proxies: [127.0.0.1, 10.0.0.0/8, "::1", "2001:db8::/32"] }
upstreams:
  b: { url: "https://api.example.com:8443/", timeouts: { connect: 1.5s, response: 2m, idle: 1d } }
routes:
  - name: r1
    match: { path: /Upload, methods: [post, POST, put] }
    upstream: b
    max_body: 512kb
    limits: { key: "header:X-API-Key", hourly: 5 }
  - name: r2
    match: { path: /raw }
    upstream: b
    max_body: 1000
  - name: r3
    match: { path: /big }
    upstream: b
    max_body: 1GB
`;
    const p = valid(parsePolicy(text, 'p.yaml', {}));
    expect(p.listen).toEqual({ host: '::1', port: 0 });
    expect(p.admin.listen).toEqual({ host: 'localhost', port: 9999 });
    expect(p.clientIp.trustedProxies).toEqual([
      { cidr: '127.0.0.1/32', address: '127.0.0.1', prefix: 32, family: 'ipv4' },
      { cidr: '10.0.0.0/8', address: '10.0.0.0', prefix: 8, family: 'ipv4' },
      { cidr: '::1/128', address: '::1', prefix: 128, family: 'ipv6' },
      { cidr: '2001:db8::/32', address: '2001:db8::', prefix: 32, family: 'ipv6' },
    ]);
    expect(p.upstreams.b!.url).toBe('https://api.example.com:8443');
    expect(p.upstreams.b!.timeouts).toEqual({ connectMs: 1500, responseMs: 120_000, idleMs: 86_400_000 });
    const [r1, r2, r3] = p.routes;
    expect(r1!.match).toEqual({
      pattern: '/Upload',
      path: '/upload',
      prefix: false,
      methods: ['POST', 'PUT'],
      host: null,
      headers: null,
    });
    expect(r1!.maxBodyBytes).toBe(512 * 1024);
    expect(r1!.limits!.key).toEqual([{ type: 'header', name: 'x-api-key' }]);
    expect(r2!.maxBodyBytes).toBe(1000);
    expect(r3!.maxBodyBytes).toBe(1024 ** 3);
  });
});

describe('workers', () => {
  it('takes a count of processes or auto, and names the range when it is neither', () => {
    const workers = (v: string) => {
      const r = parsePolicy(`workers: ${v}\n${MINIMAL}`, 'p.yaml');
      return r.ok ? r.policy.workers : errors(r);
    };
    expect(workers('4')).toBe(4);
    expect(workers('auto')).toBe('auto');
    for (const bad of ['0', '65', '2.5', 'many', '"4"']) {
      expect(workers(bad)).toEqual([
        expect.stringMatching(
          /^p\.yaml:1:10: workers: expected auto or a whole number of processes from 1 to 64, got /,
        ),
      ]);
    }
  });
});

describe('freezing', () => {
  it('the loaded policy is deeply frozen', () => {
    const policy = valid(parsePolicy(MINIMAL, 'p.yaml', {})) as unknown as Mutable;
    expect(Object.isFrozen(policy)).toBe(true);
    expect(() => {
      policy.version = 2;
    }).toThrow(TypeError);
    expect(() => {
      policy.routes[0]!.match.path = '/other/';
    }).toThrow(TypeError);
    expect(() => policy.routes.push({})).toThrow(TypeError);
    expect(() => {
      policy.upstreams.backend!.breaker.failureStatuses[0] = 500;
    }).toThrow(TypeError);
  });
});

describe('environment variables in values', () => {
  const text = `
admin:
  listen: \${ADMIN_LISTEN:-127.0.0.1:9191}
  token: \${ADMIN_TOKEN}
store:
  type: redis
  url: \${REDIS_URL:-redis://127.0.0.1:6379}/\${REDIS_DB:-0}
  prefix: "$\${literal}:"
upstreams:
  backend: { url: http://127.0.0.1:8000 }
routes:
  - name: api
    match: { path: /api/* }
    upstream: backend
    limits:
      hourly: \${HOURLY:-100}
      daily: 1000
      shadow: \${SHADOW:-false}
`;

  it('uses the environment when set, the default otherwise', () => {
    const p = valid(parsePolicy(text, 'p.yaml', { ADMIN_TOKEN: 's3cret', REDIS_DB: '2', SHADOW: 'true' }));
    expect(p.admin).toEqual({ listen: { host: '127.0.0.1', port: 9191 }, token: 's3cret' });
    expect(p.store.url).toBe('redis://127.0.0.1:6379/2');
    expect(p.routes[0]!.limits!.windows[0]).toEqual({ name: 'hourly', limit: 100, windowMs: 3_600_000 });
    expect(p.routes[0]!.limits!.shadow).toBe(true);
  });

  it('"$${" is a literal "${"', () => {
    const p = valid(parsePolicy(text, 'p.yaml', { ADMIN_TOKEN: 't' }));
    expect(p.store.prefix).toBe(`\${literal}:`);
  });

  it('an unquoted value is typed as if written in place, and a token of digits stays exact', () => {
    const p = valid(parsePolicy(text, 'p.yaml', { ADMIN_TOKEN: '00123', HOURLY: '7' }));
    expect(p.routes[0]!.limits!.windows[0]!.limit).toBe(7);
    expect(p.admin.token).toBe('00123');
    expect(valid(parsePolicy(text, 'p.yaml', { ADMIN_TOKEN: '123' })).admin.token).toBe('123');
  });

  it('":-" also replaces a variable set to the empty string, as in the shell', () => {
    const p = valid(parsePolicy(text, 'p.yaml', { ADMIN_TOKEN: 't', HOURLY: '' }));
    expect(p.routes[0]!.limits!.windows[0]!.limit).toBe(100);
  });

  it('an empty token (ADMIN_TOKEN set but empty) means no token', () => {
    expect(valid(parsePolicy(text, 'p.yaml', { ADMIN_TOKEN: '' })).admin.token).toBeNull();
  });

  it('a variable without a default is an error at its scalar while VAR is unset', () => {
    expect(errors(parsePolicy(text, 'p.yaml', {}))).toEqual([
      `p.yaml:4:10: environment variable ADMIN_TOKEN is not set (give a default with \${ADMIN_TOKEN:-default})`,
    ]);
  });

  it('an expanded value is validated where it was written, and named by its variable, never shown', () => {
    expect(errors(parsePolicy(text, 'p.yaml', { ADMIN_TOKEN: 't', HOURLY: 'many' }))).toEqual([
      'p.yaml:16:15: routes[0].limits.hourly: expected a number, got <value of HOURLY>',
    ]);
  });

  it('no error shows a value that came from the environment, quoted, bare or in part', () => {
    const secret = 'redis-password-hunter2';
    const policy = `
store:
  url: \${REDIS_URL}
  timeout: \${STORE_TIMEOUT}
client_ip:
  trusted_proxies: ["\${PROXY_NET}"]
upstreams:
  backend: { url: http://127.0.0.1:8000 }
routes:
  - name: api
    match: { path: /api/* }
    upstream: \${UPSTREAM}
    limits:
      key: "header:\${KEY_HEADER}"
      hourly: \${HOURLY}
`;
    const env = {
      REDIS_URL: `http://:${secret}@redis:6379`,
      STORE_TIMEOUT: `${secret}ms`,
      PROXY_NET: `${secret}/8`,
      UPSTREAM: `up-${secret}`,
      KEY_HEADER: `bad header ${secret}`,
      HOURLY: '0',
    };
    const found = errors(parsePolicy(policy, 'p.yaml', env));
    expect(found).toEqual([
      'p.yaml:3:8: store.url: expected a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379), got <value of REDIS_URL>',
      'p.yaml:4:12: store.timeout: invalid duration <value of STORE_TIMEOUT>; use a number with a unit: ms, s, m, h or d (e.g. 50ms, 2s, 1m)',
      'p.yaml:6:21: client_ip.trusted_proxies[0]: invalid CIDR or IP <value of PROXY_NET>; expected an IP or a CIDR block (e.g. 127.0.0.1, 10.0.0.0/8, ::1, fd00::/8)',
      'p.yaml:12:15: routes[0].upstream: unknown upstream <value of UPSTREAM> (defined: backend)',
      'p.yaml:14:12: routes[0].limits.key: <value of KEY_HEADER> is not valid here',
      'p.yaml:15:15: routes[0].limits.hourly: must be at least 1, got <value of HOURLY>',
    ]);
    // And a value met in another message (the unknown upstream, alone once the rest is right).
    const upstream = errors(
      parsePolicy(policy, 'p.yaml', {
        ...env,
        REDIS_URL: 'redis://127.0.0.1:6379',
        STORE_TIMEOUT: '50ms',
        PROXY_NET: '10.0.0.0/8',
        KEY_HEADER: 'X-Key',
        HOURLY: '10',
      }),
    );
    expect(upstream).toEqual([
      'p.yaml:12:15: routes[0].upstream: unknown upstream <value of UPSTREAM> (defined: backend)',
    ]);
    for (const e of [...found, ...upstream]) expect(e).not.toMatch(/hunter2|redis-pass/);
  });
});

describe('error positions', () => {
  it('an unknown key points at the key', () => {
    const text = `upstreams:\n  backend:\n    url: http://x:1\n    retries: 3\nroutes:\n  - { name: a, upstream: backend, match: { path: /a, method: GET } }\n`;
    expect(errors(parsePolicy(text, 'f.yaml', {}))).toEqual([
      'f.yaml:4:5: upstreams.backend: unknown key "retries" (allowed: url, timeouts, breaker)',
      'f.yaml:6:54: routes[0].match: unknown key "method" (allowed: path, methods, host, headers)',
    ]);
  });

  it('a wrong value points at the value', () => {
    const text = `store:\n  timeout:   5x\nupstreams:\n  b: { url: http://x:1 }\nroutes:\n  - name: a\n    match:\n      path: /a\n      methods: [GET, 7]\n    upstream: b\n`;
    expect(errors(parsePolicy(text, 'f.yaml', {}))).toEqual([
      'f.yaml:2:14: store.timeout: invalid duration "5x"; use a number with a unit: ms, s, m, h or d (e.g. 50ms, 2s, 1m)',
      'f.yaml:9:22: routes[0].match.methods[1]: expected a string, got 7',
    ]);
  });

  it('an empty value points at its key', () => {
    const text = `upstreams:\n  b:\n    url:\nroutes:\n  - { name: a, upstream: b, match: { path: /a } }\n`;
    expect(errors(parsePolicy(text, 'f.yaml', {}))).toEqual([
      'f.yaml:3:5: upstreams.b.url: expected the http(s) origin of the upstream (e.g. http://127.0.0.1:8000), got an empty value',
    ]);
  });

  it('a bad upstream name points at the name', () => {
    const text = `upstreams:\n  "my backend": { url: http://x:1 }\nroutes:\n  - { name: a, upstream: my backend, match: { path: /a } }\n`;
    expect(errors(parsePolicy(text, 'f.yaml', {}))).toEqual([
      'f.yaml:2:3: upstreams.my backend: invalid name "my backend"; use letters, digits, _ . - (at most 64, starting with a letter or digit)',
    ]);
  });

  it('an alias to nowhere points at the alias, and its value counts as unknown, not as wrong', () => {
    expect(errors(parsePolicy(`${MINIMAL}store: *nothing\n`, 'f.yaml', {}))).toEqual([
      'f.yaml:8:8: unknown alias *nothing',
    ]);
    // The routes still refer to upstreams, which cannot be known: no "unknown upstream" either.
    const text = 'upstreams: *nothing\nroutes:\n  - { name: a, match: { path: /a }, upstream: b }\n';
    expect(errors(parsePolicy(text, 'f.yaml', {}))).toEqual(['f.yaml:1:12: unknown alias *nothing']);
  });
});

describe('redaction for GET /admin/config', () => {
  it('hides the admin token and the store password, and leaves the policy alone', () => {
    const text =
      MINIMAL + 'admin: { token: hunter2 }\nstore: { type: redis, url: "redis://user:pa55@redis:6379/0" }\n';
    const policy = valid(parsePolicy(text, 'p.yaml', {}));
    const redacted = redactPolicy(policy);
    expect(redacted.admin.token).toBe('***');
    expect(redacted.store.url).toBe('redis://user:***@redis:6379/0');
    expect(policy.admin.token).toBe('hunter2');
    expect(policy.store.url).toBe('redis://user:pa55@redis:6379/0');
    expect(JSON.stringify(redacted)).not.toMatch(/hunter2|pa55/);
  });

  it('leaves what has no secret as it is', () => {
    const redacted = redactPolicy(valid(parsePolicy(MINIMAL, 'p.yaml', {})));
    expect(redacted.admin.token).toBeNull();
    expect(redacted.store.url).toBe('redis://127.0.0.1:6379');
    expect(redactUrl('redis://:only-password@h:1')).toBe('redis://:***@h:1');
    expect(redactUrl('rediss://h:6380/2?family=6&db=3')).toBe('rediss://h:6380/2?family=6&db=3');
  });

  // Every place ioredis (utils parseURL) takes a credential from: the userinfo, and any query parameter
  // (each becomes a client option: password, username, sentinelPassword…).
  it.each([
    ['redis://user:pa55@h:6379/0', 'redis://user:***@h:6379/0'],
    ['redis://:pa55@h:6379', 'redis://:***@h:6379'],
    ['redis://pa55@h:6379', 'redis://***@h:6379'],
    ['redis://h:6379?password=pa55', 'redis://h:6379?password=***'],
    ['redis://h:6379/1?db=1&password=pa55&family=4', 'redis://h:6379/1?db=1&password=***&family=4'],
    ['redis://h?username=u&password=pa55', 'redis://h?username=***&password=***'],
    ['rediss://h?sentinelPassword=pa55', 'rediss://h?sentinelPassword=***'],
    ['redis://h?pass%77ord=pa55', 'redis://h?password=***'],
    ['redis://u:pa55@h?password=pa55&password=pa55', 'redis://u:***@h?password=***&password=***'],
    ['redis://u:pa%2055@h', 'redis://u:***@h'],
  ])('redactUrl(%s) → %s', (url, redacted) => {
    expect(redactUrl(url)).toBe(redacted);
  });

  it('hides a query password in store.url from GET /admin/config', () => {
    const text = `${MINIMAL}store: { type: redis, url: "redis://h:6379/0?password=pa55" }\n`;
    const redacted = redactPolicy(valid(parsePolicy(text, 'p.yaml', {})));
    expect(JSON.stringify(redacted)).not.toContain('pa55');
    expect(redacted.store.url).toBe('redis://h:6379/0?password=***');
  });
});

describe('section hashes', () => {
  const two = (limit: number, flow: boolean) => `
upstreams:
  backend: { url: http://127.0.0.1:8000 }
routes:
  - name: a
    match: { path: /a }
    upstream: backend
    limits: ${flow ? '{ daily: 1000, hourly: 100 }' : '\n      hourly: 100\n      daily: 1000'}
  - name: b
    match: { path: /b }
    upstream: backend
    limits: { hourly: ${limit} }
`;

  it('an unchanged route keeps its limiter scope, an unchanged upstream its pool, when another route changes', () => {
    const before = valid(parsePolicy(two(10, false), 'p.yaml', {}));
    const after = valid(parsePolicy(two(20, true), 'p.yaml', {}));
    const scope = (p: Policy, i: number): string => limiterScope(p.routes[i]!, p.routes[i]!.limits!);
    expect(scope(after, 0)).toBe(scope(before, 0));
    expect(scope(after, 1)).not.toBe(scope(before, 1));
    expect(poolHash(after.upstreams.backend!)).toBe(poolHash(before.upstreams.backend!));
  });

  it("a route's cost is no part of its limiter scope: changing it keeps the counters", () => {
    const withCost = (cost: string) =>
      valid(
        parsePolicy(
          two(10, false).replace('limits: { hourly: 10 }', `limits: { hourly: 10, cost: ${cost} }`),
          'p.yaml',
          {},
        ),
      );
    const scope = (p: Policy): string => limiterScope(p.routes[1]!, p.routes[1]!.limits!);
    const plain = valid(parsePolicy(two(10, false), 'p.yaml', {}));
    expect(scope(withCost('5'))).toBe(scope(plain));
    expect(scope(withCost('{ header: X-Cost, max: 10 }'))).toBe(scope(plain));
  });

  it('the policy hash follows the effective content, not the text', () => {
    const a = parsePolicy(two(10, false), 'p.yaml', {});
    const b = parsePolicy(two(10, true), 'other.yaml', {});
    const c = parsePolicy(two(11, true), 'p.yaml', {});
    expect(a.ok && b.ok && a.hash === b.hash).toBe(true);
    expect(a.ok && c.ok && a.hash !== c.hash).toBe(true);
  });

  it('sectionHash ignores key order', () => {
    expect(sectionHash({ a: 1, b: [1, { c: 2, d: 3 }] })).toBe(sectionHash({ b: [1, { d: 3, c: 2 }], a: 1 }));
    expect(sectionHash({ a: 1 })).not.toBe(sectionHash({ a: 2 }));
  });
});

describe('hostile policy files', () => {
  const unknownKeys = (n: number) => {
    let text = MINIMAL;
    for (let i = 0; i < n; i++) text += `x${i}: 1\n`;
    return text;
  };

  it('loads in linear time: 20,000 unknown keys take not much more than 4 times 5,000', () => {
    const time = (text: string) => {
      let best = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        parsePolicy(text, 'p.yaml', {});
        best = Math.min(best, performance.now() - t0);
      }
      return best;
    };
    const small = unknownKeys(5_000);
    const large = unknownKeys(20_000);
    time(small); // warm up
    const [ts, tl] = [time(small), time(large)];
    // Quadratic work (the parser's duplicate-key check, a position lookup per error) made this ratio 16
    // (3.7 s for 5k keys, 16 s for 20k); linear work makes it 4. A loaded machine gets room to spare.
    expect(tl / ts).toBeLessThan(8);
    // 189 KB: it blocked /healthz for 7.4 s on reload.
    expect(tl).toBeLessThan(3_000);
  });

  it('thousands of syntax errors are placed in linear time (an unclosed quote on every line)', () => {
    const quotes = (n: number) => {
      let text = MINIMAL;
      for (let i = 0; i < n; i++) text += `k${i}: "a\n`;
      return text;
    };
    const time = (text: string) => {
      const t0 = performance.now();
      const found = errors(parsePolicy(text, 'p.yaml', {}));
      return { ms: performance.now() - t0, found };
    };
    time(quotes(2_000)); // warm up
    const small = time(quotes(2_000));
    const large = time(quotes(8_000));
    expect(large.found[0]).toBe('p.yaml:8:5: Missing closing "quote');
    expect(large.found[20]).toBe('p.yaml:28:6: … and 7980 more errors');
    // Finding each error's opening quote with a walk of the whole document took 4 s for 2,000 lines,
    // and grows with the square; one walk for all of them keeps the ratio near 4.
    expect(large.ms / small.ms).toBeLessThan(10);
    expect(large.ms).toBeLessThan(5_000);
  });

  it('reports the first 20 errors, then how many more there are, each at its position', () => {
    const found = errors(parsePolicy(unknownKeys(500), 'p.yaml', {}));
    expect(found).toHaveLength(21);
    expect(found[0]).toBe(
      'p.yaml:8:1: unknown key "x0" (allowed: version, listen, workers, admin, store, client_ip, allowlist, upstreams, routes)',
    );
    expect(found[19]).toMatch(/^p\.yaml:27:1: unknown key "x19" /);
    expect(found[20]).toBe('p.yaml:28:1: … and 480 more errors');
  });

  it('caps errors of every stage together: the first 20 in file order, then a count of the rest', () => {
    // Each route holds a reference error, a wrong value and an unset variable, in that order.
    const routes = Array.from(
      { length: 40 },
      (_, i) =>
        `  - { name: r${i}, match: { path: /r${i} }, upstream: nope, max_body: lots, limits: { hourly: "\${UNSET_${i}}" } }`,
    );
    const text = `upstreams:\n  backend: { url: http://127.0.0.1:8000 }\nroutes:\n${routes.join('\n')}\n`;
    const found = errors(parsePolicy(text, 'p.yaml', {}));
    const line = (i: number) => [
      `p.yaml:${i + 4}:49: routes[${i}].upstream: unknown upstream "nope" (defined: backend)`,
      `p.yaml:${i + 4}:65: routes[${i}].max_body: invalid size "lots"; use a number of bytes or a number with a unit: kb, mb or gb (e.g. 512kb, 200mb)`,
      `p.yaml:${i + 4}:89: environment variable UNSET_${i} is not set (give a default with \${UNSET_${i}:-default})`,
    ];
    expect(found).toEqual([
      ...[0, 1, 2, 3, 4, 5].flatMap(line),
      ...line(6).slice(0, 2),
      'p.yaml:10:89: … and 100 more errors',
    ]);
  });

  it('a 1 MiB policy of tiny errors of every stage loads in linear time, its list capped', () => {
    // Wrong values and unset variables in a list, 1000 routes to an unknown upstream, then unknown
    // keys up to the cap: about 120,000 errors.
    let text = 'client_ip:\n  trusted_proxies:\n';
    for (let i = 0; i < 6; i++) text += i % 2 ? `    - \${V${i}}\n` : '    - 7\n';
    text += 'upstreams:\n  backend: { url: http://127.0.0.1:8000 }\nroutes:\n';
    for (let i = 0; i < 1000; i++) text += `  - { name: r${i}, match: { path: /r${i} }, upstream: x }\n`;
    let keys = 0;
    for (;;) {
      const key = `k${keys.toString(36)}: 1\n`;
      if (text.length + key.length > 1024 * 1024) break;
      text += key;
      keys++;
    }
    const t0 = performance.now();
    const found = errors(parsePolicy(text, 'p.yaml', {}));
    const ms = performance.now() - t0;
    expect(found).toHaveLength(21);
    expect(found[0]).toMatch(
      /^p\.yaml:3:7: client_ip\.trusted_proxies\[0\]: expected an IP or a CIDR block /,
    );
    expect(found[1]).toBe(
      `p.yaml:4:7: environment variable V1 is not set (give a default with \${V1:-default})`,
    );
    expect(found[6]).toBe('p.yaml:12:49: routes[0].upstream: unknown upstream "x" (defined: backend)');
    expect(found[20]).toBe(`p.yaml:26:51: … and ${6 + 1000 + keys - 20} more errors`);
    // About 1-2 s alone, 3-7 s on a loaded two-core machine; a quadratic step would take minutes.
    expect(ms).toBeLessThan(30_000);
  }, 60_000);

  it('refuses a file over 1 MiB before parsing it, and a file that is no regular file', async () => {
    const big = `${MINIMAL}# ${'x'.repeat(1024 * 1024)}\n`;
    const message = 'policy file is larger than 1048576 bytes (1 MiB), the most a policy may be';
    expect(errors(parsePolicy(big, 'p.yaml', {}))).toEqual([`p.yaml:1:1: ${message}`]);
    const dir = await mkdtemp(join(tmpdir(), 'floodgate-load-'));
    try {
      await writeFile(join(dir, 'big.yaml'), big);
      expect(errors(await loadPolicyFile(join(dir, 'big.yaml'), {}))).toEqual([
        `${join(dir, 'big.yaml')}:1:1: ${message}`,
      ]);
      // /dev/zero never ends; a FIFO would block the open until someone writes.
      expect(errors(await loadPolicyFile('/dev/zero', {}))).toEqual([
        '/dev/zero:1:1: cannot read policy file (not a regular file)',
      ]);
      execFileSync('mkfifo', [join(dir, 'fifo.yaml')]);
      expect(errors(await loadPolicyFile(join(dir, 'fifo.yaml'), {}))).toEqual([
        `${join(dir, 'fifo.yaml')}:1:1: cannot read policy file (not a regular file)`,
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('does not echo a file that is not a policy (a symlink to a password file)', async () => {
    const shadow = [
      'root:$6$Sa1t$Zm9vYmFyYmF6cXV4c2VjcmV0aGFzaA:19000:0:99999:7:::',
      'daemon:*:19000:0:99999:7:::',
      'alice:$6$pepper$c2VjcmV0aGFzaG9mYWxpY2U:19000:0:99999:7:::',
    ].join('\n');
    const dir = await mkdtemp(join(tmpdir(), 'floodgate-load-'));
    try {
      await writeFile(join(dir, 'shadow'), `${shadow}\n`);
      await symlink(join(dir, 'shadow'), join(dir, 'policy.yaml'));
      const found = errors(await loadPolicyFile(join(dir, 'policy.yaml'), {}));
      expect(found).toEqual([
        `${join(dir, 'policy.yaml')}:1:1: not a floodgate policy: none of its top-level keys is one of version, listen, workers, admin, store, client_ip, allowlist, upstreams, routes`,
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // Text that reads as one long string (a passwd file, folded) is described, not quoted.
    const passwd = 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n';
    expect(errors(parsePolicy(passwd, 'p.yaml', {}))).toEqual([
      'p.yaml:1:1: a policy is a map of keys (version, listen, workers, admin, store, client_ip, allowlist, upstreams, routes), not text',
    ]);
  });

  it('quotes at most 40 characters of a token, and no syntax error quotes a line', () => {
    const long = `k${'e'.repeat(200)}`;
    const found = errors(parsePolicy(`${MINIMAL}${long}: 1\n`, 'p.yaml', {}));
    expect(found).toEqual([
      `p.yaml:8:1: unknown key "k${'e'.repeat(38)}…" (allowed: version, listen, workers, admin, store, client_ip, allowlist, upstreams, routes)`,
    ]);
    // The parser quotes the rest of a block scalar's header line.
    const header = errors(parsePolicy(`${MINIMAL}store: |x${'y'.repeat(300)}\n  text\n`, 'p.yaml', {}));
    expect(header).toEqual([
      `p.yaml:8:9: Block scalar header includes extra characters: |x${'y'.repeat(40)}…`,
    ]);
    const alias = errors(parsePolicy(`${MINIMAL}store: *${'a'.repeat(300)}\n`, 'p.yaml', {}));
    expect(alias).toEqual([`p.yaml:8:8: unknown alias *${'a'.repeat(39)}…`]);
  });

  it('reports every duplicate key, as the loaded map would see it', () => {
    const text = `${MINIMAL}listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\nadmin: { token: a, "token": b }\n`;
    expect(errors(parsePolicy(text, 'p.yaml', {}))).toEqual([
      'p.yaml:9:1: duplicate key "listen" (a map holds each key once)',
      'p.yaml:10:20: duplicate key "token" (a map holds each key once)',
    ]);
  });
});

describe('bounds on what a policy holds', () => {
  const upstreams = `upstreams:\n${Array.from({ length: 12 }, (_, i) => `  u${i}: { url: "http://127.0.0.1:${8000 + i}" }`).join('\n')}\n`;
  const route = (i: number, extra = '') =>
    `  - { name: r${i}, match: { path: /r${i} }, upstream: ${extra || 'u0'} }`;

  it('at most 1000 routes', () => {
    const routes = Array.from({ length: 1_001 }, (_, i) => route(i)).join('\n');
    expect(errors(parsePolicy(`${upstreams}routes:\n${routes}\n`, 'p.yaml', {}))).toEqual([
      'p.yaml:15:3: routes: at most 1000 routes are allowed',
    ]);
  });

  it('at most 32 windows a route', () => {
    const windows = Array.from({ length: 33 }, (_, i) => `{ name: w${i}, limit: 10, per: ${i + 1}m }`);
    const text = `${upstreams}routes:\n  - { name: a, match: { path: /a }, upstream: u0, limits: { windows: [${windows.join(', ')}] } }\n`;
    expect(errors(parsePolicy(text, 'p.yaml', {}))).toEqual([
      'p.yaml:15:70: routes[0].limits.windows: has more than 32 items, the most allowed',
    ]);
  });

  it('an unknown upstream lists the first 10 defined, then how many more', () => {
    expect(errors(parsePolicy(`${upstreams}routes:\n${route(0, 'nope')}\n`, 'p.yaml', {}))).toEqual([
      'p.yaml:15:49: routes[0].upstream: unknown upstream "nope" (defined: u0, u1, u2, u3, u4, u5, u6, u7, u8, u9, … 2 more)',
    ]);
  });
});
