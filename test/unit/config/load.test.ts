import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  type LoadResult,
  loadPolicyFile,
  parsePolicy,
  redactPolicy,
  redactUrl,
} from '../../../proxy/config/load.js';
import type { Policy } from '../../../proxy/config/schema.js';
import { sectionHash } from '../../../proxy/config/section-hash.js';

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
    });
    expect(policy.routes.map((r) => r.name)).toEqual(['transcribe', 'status', 'result', 'jobs']);
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
      key: { type: 'header', name: 'x-api-key' },
      windows: [
        { name: 'hourly', limit: 1000, windowMs: 3_600_000 },
        { name: 'daily', limit: 10_000, windowMs: 86_400_000 },
        { name: 'burst', limit: 20, windowMs: 10_000 },
        { name: 'minute', limit: 60, windowMs: 60_000 },
      ],
      algorithm: 'sliding-log',
      shadow: false,
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
  it('fills every key DESIGN §2 leaves out', () => {
    const policy = valid(parsePolicy(MINIMAL, 'p.yaml', {}));
    const { hash: upstreamHash, ...upstream } = policy.upstreams.backend!;
    const { hash: routeHash, ...route } = policy.routes[0]!;
    expect({ ...policy, upstreams: { backend: upstream }, routes: [route] }).toEqual({
      version: 1,
      listen: { host: '127.0.0.1', port: 8080 },
      admin: { listen: { host: '127.0.0.1', port: 9090 }, token: null },
      store: {
        type: 'memory',
        url: 'redis://127.0.0.1:6379',
        prefix: 'floodgate:',
        timeoutMs: 50,
        onError: 'local',
        cluster: false,
      },
      clientIp: { trustedProxies: [] },
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
          match: { pattern: '/api/*', path: '/api/', prefix: true, methods: null },
          upstream: 'backend',
          maxBodyBytes: null,
          limits: null,
        },
      ],
    });
    expect(upstreamHash).toMatch(/^[0-9a-f]{16}$/);
    expect(routeHash).toMatch(/^[0-9a-f]{16}$/);
  });

  it('limits default to the client ip, sliding-log and enforcing', () => {
    const text = MINIMAL.replace('upstream: backend', 'upstream: backend\n    limits: { daily: 10 }');
    expect(valid(parsePolicy(text, 'p.yaml', {})).routes[0]!.limits).toEqual({
      key: { type: 'ip' },
      windows: [{ name: 'daily', limit: 10, windowMs: 86_400_000 }],
      algorithm: 'sliding-log',
      shadow: false,
    });
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
    });
    expect(r1!.maxBodyBytes).toBe(512 * 1024);
    expect(r1!.limits!.key).toEqual({ type: 'header', name: 'x-api-key' });
    expect(r2!.maxBodyBytes).toBe(1000);
    expect(r3!.maxBodyBytes).toBe(1024 ** 3);
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

  it('an expanded value is validated where it was written', () => {
    expect(errors(parsePolicy(text, 'p.yaml', { ADMIN_TOKEN: 't', HOURLY: 'many' }))).toEqual([
      'p.yaml:16:15: routes[0].limits.hourly: expected a number, got "many"',
    ]);
  });
});

describe('error positions', () => {
  it('an unknown key points at the key', () => {
    const text = `upstreams:\n  backend:\n    url: http://x:1\n    retries: 3\nroutes:\n  - { name: a, upstream: backend, match: { path: /a, method: GET } }\n`;
    expect(errors(parsePolicy(text, 'f.yaml', {}))).toEqual([
      'f.yaml:4:5: upstreams.backend: unknown key "retries" (allowed: url, timeouts, breaker)',
      'f.yaml:6:54: routes[0].match: unknown key "method" (allowed: path, methods)',
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

  it('an alias to nowhere points at the alias', () => {
    expect(errors(parsePolicy('upstreams: *nothing\n', 'f.yaml', {}))).toEqual([
      'f.yaml:1:12: unknown alias *nothing',
    ]);
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

  it('an unchanged route or upstream keeps its hash when another route changes', () => {
    const before = valid(parsePolicy(two(10, false), 'p.yaml', {}));
    const after = valid(parsePolicy(two(20, true), 'p.yaml', {}));
    expect(after.routes[0]!.hash).toBe(before.routes[0]!.hash);
    expect(after.routes[1]!.hash).not.toBe(before.routes[1]!.hash);
    expect(after.upstreams.backend!.hash).toBe(before.upstreams.backend!.hash);
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
