import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../proxy/config/load.js';
import { compileRoutes, mismatch, type RouteMatchSpec } from '../../../proxy/http/router.js';

interface TestRoute {
  name: string;
  match: RouteMatchSpec;
}

/** A route as the schema would normalize it: '/x/*' is a prefix compared as '/x/'. */
function route(name: string, pattern: string, methods: string[] | null = null): TestRoute {
  const prefix = pattern.endsWith('/*');
  return { name, match: { path: prefix ? pattern.slice(0, -1) : pattern, prefix, methods } };
}

const names = (table: ReturnType<typeof compileRoutes<TestRoute>>, method: string, paths: string[]) =>
  paths.map((p) => table.match(method, p)?.name ?? null);

describe('compileRoutes', () => {
  it('matches exact paths exactly', () => {
    const table = compileRoutes([route('t', '/transcribe')]);
    expect(names(table, 'POST', ['/transcribe', '/transcribe/', '/transcribe/x', '/transcrib', '/'])).toEqual(
      ['t', null, null, null, null],
    );
  });

  it('a prefix matches "/p" and below (upstreams route /p/ and /p alike), never a sibling sharing the letters', () => {
    const table = compileRoutes([route('s', '/status/*')]);
    expect(
      names(table, 'GET', ['/status/', '/status/abc', '/status/a/b/c', '/status', '/statusx', '/x/status/']),
    ).toEqual(['s', 's', 's', 's', null, null]);
  });

  it('an exact route written with a trailing slash is the route without it', () => {
    const table = compileRoutes([route('s', '/search/')]);
    expect(names(table, 'GET', ['/search', '/search/x'])).toEqual(['s', null]);
  });

  it('"/*" is a catch-all', () => {
    const table = compileRoutes([route('a', '/a'), route('all', '/*')]);
    expect(names(table, 'GET', ['/a', '/', '/b', '/a/b'])).toEqual(['a', 'all', 'all', 'all']);
  });

  it('filters by method, falling through to later routes', () => {
    const table = compileRoutes([
      route('upload', '/files/*', ['POST', 'PUT']),
      route('read', '/files/*', ['GET']),
      route('anything', '/files/*'),
    ]);
    expect(['POST', 'PUT', 'GET', 'DELETE'].map((m) => table.match(m, '/files/1')?.name)).toEqual([
      'upload',
      'upload',
      'read',
      'anything',
    ]);
    // HEAD runs the GET handler in Node and Express, so a GET route takes it (and counts it).
    expect(compileRoutes([route('g', '/g', ['GET'])]).match('HEAD', '/g')?.name).toBe('g');
    expect(compileRoutes([route('p', '/p', ['POST'])]).match('HEAD', '/p')).toBeUndefined();
  });

  it('the first matching route in declaration order wins, exact or prefix', () => {
    const prefixFirst = compileRoutes([
      route('wide', '/api/*'),
      route('exact', '/api/users'),
      route('deep', '/api/users/*'),
    ]);
    expect(names(prefixFirst, 'GET', ['/api/users', '/api/users/7'])).toEqual(['wide', 'wide']);

    const exactFirst = compileRoutes([
      route('exact', '/api/users'),
      route('deep', '/api/users/*'),
      route('wide', '/api/*'),
    ]);
    expect(names(exactFirst, 'GET', ['/api/users', '/api/users/7', '/api/other'])).toEqual([
      'exact',
      'deep',
      'wide',
    ]);

    // A shorter prefix declared first beats a longer one declared later.
    const shortFirst = compileRoutes([route('short', '/a/*', ['GET']), route('long', '/a/b/*')]);
    expect(names(shortFirst, 'GET', ['/a/b/c'])).toEqual(['short']);
    expect(names(shortFirst, 'POST', ['/a/b/c'])).toEqual(['long']);
  });

  it('agrees with a linear scan over 500 routes', () => {
    // Deterministic pseudo-random routes and requests (LCG), so failures reproduce.
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const segs = ['a', 'b', 'c', 'api', 'v1', 'x'];
    const methodSets = [null, ['GET'], ['POST'], ['GET', 'POST'], ['DELETE']];
    const randomPath = (depth: number) =>
      `/${Array.from({ length: depth }, () => segs[rand(segs.length)]).join('/')}`;
    const routes = Array.from({ length: 500 }, (_, i) => {
      const base = randomPath(1 + rand(4));
      return route(`r${i}`, rand(3) === 0 ? `${base}/*` : base, methodSets[rand(methodSets.length)]!);
    });
    const linear = (method: string, path: string) =>
      routes.find((r) => {
        const m = r.match;
        const pathOk = m.prefix ? path.startsWith(m.path) : path === m.path;
        return pathOk && (m.methods === null || m.methods.includes(method));
      });
    const table = compileRoutes(routes);
    let matched = 0;
    for (let i = 0; i < 5_000; i++) {
      const path = randomPath(1 + rand(5)) + (rand(4) === 0 ? '/' : '');
      const method = ['GET', 'POST', 'DELETE', 'PUT'][rand(4)]!;
      const expected = linear(method, path);
      if (expected) matched++;
      expect(table.match(method, path)?.name, `${method} ${path}`).toBe(expected?.name);
    }
    expect(matched).toBeGreaterThan(1_000); // the comparison exercised real matches, not only misses
  });

  it('takes the routes of a loaded policy as they are', () => {
    const result = parsePolicy(
      `upstreams: { b: { url: "http://x:1" } }
routes:
  - { name: upload, upstream: b, match: { path: /Transcribe, methods: [post] } }
  - { name: status, upstream: b, match: { path: /status/* } }
`,
      'p.yaml',
      {},
    );
    if (!result.ok) throw new Error(result.errors.join('\n'));
    const table = compileRoutes(result.policy.routes);
    // Route paths are stored lower-cased, as the data plane's canonical request paths are.
    expect(table.match('POST', '/transcribe')?.name).toBe('upload');
    expect(table.match('GET', '/status/1')?.name).toBe('status');
    expect(table.match('GET', '/transcribe')).toBeUndefined();
  });
});

describe('compileRoutes: host and header conditions', () => {
  /** A route with conditions, as the schema normalizes them (hosts canonical, header names lower-case). */
  const cond = (
    name: string,
    pattern: string,
    c: { host?: string[]; headers?: Record<string, string[]>; methods?: string[] },
  ): TestRoute => {
    const base = route(name, pattern, c.methods ?? null);
    const headers = c.headers ? Object.entries(c.headers).map(([n, values]) => ({ name: n, values })) : null;
    return { name, match: { ...base.match, host: c.host ?? null, headers } };
  };
  const at = (
    table: ReturnType<typeof compileRoutes<TestRoute>>,
    host: string,
    headers: Record<string, string | string[]> = {},
    method = 'GET',
    path = '/v1/x',
  ) => table.match(method, path, host, headers)?.name ?? null;

  it('an exact host: any case, with or without port or one trailing dot, and nothing else', () => {
    const table = compileRoutes([cond('api', '/v1/*', { host: ['api.example.com'] }), route('rest', '/*')]);
    const hosts = [
      'api.example.com',
      'API.EXAMPLE.COM.',
      'api.example.com:8080',
      'Api.Example.Com.:443',
      'api.example.com.evil.com',
      'evil.api.example.com',
      'api.example.com..',
      'api.example.com:x',
      '',
    ];
    expect(hosts.map((h) => at(table, h))).toEqual([
      'api',
      'api',
      'api',
      'api',
      'rest',
      'rest',
      'rest',
      'rest',
      'rest',
    ]);
  });

  it('a wildcard: one or more labels under the name, not the name itself', () => {
    const table = compileRoutes([cond('tenants', '/v1/*', { host: ['*.example.com'] }), route('rest', '/*')]);
    expect(
      [
        'a.example.com',
        'EVIL.API.EXAMPLE.COM.:1',
        'example.com',
        'xexample.com',
        'a.example.com.evil.com',
      ].map((h) => at(table, h)),
    ).toEqual(['tenants', 'tenants', 'rest', 'rest', 'rest']);
  });

  it('an IPv6 host in any spelling', () => {
    const table = compileRoutes([cond('local', '/v1/*', { host: ['[::1]'] })]);
    expect(['[::1]', '[0:0::1]:8080', '::1', '[::2]'].map((h) => at(table, h))).toEqual([
      'local',
      'local',
      null,
      null,
    ]);
  });

  it('headers: every listed header present with exactly one of its values', () => {
    const table = compileRoutes([
      cond('acme-prod', '/v1/*', { headers: { 'x-tenant': ['acme'], 'x-env': ['prod', 'staging'] } }),
      route('rest', '/*'),
    ]);
    const cases: Record<string, string>[] = [
      { 'x-tenant': 'acme', 'x-env': 'prod' },
      { 'x-tenant': 'acme', 'x-env': 'staging' },
      { 'x-tenant': 'acme', 'x-env': 'dev' },
      { 'x-tenant': 'acme' },
      { 'x-env': 'prod' },
      { 'x-tenant': 'ACME', 'x-env': 'prod' },
      { 'x-tenant': 'acme, acme', 'x-env': 'prod' },
      { 'x-tenant': '', 'x-env': 'prod' },
    ];
    expect(cases.map((h) => at(table, '', h))).toEqual([
      'acme-prod',
      'acme-prod',
      'rest',
      'rest',
      'rest',
      'rest',
      'rest',
      'rest',
    ]);
    // A header node:http gives as a list (set-cookie) is never one value.
    expect(
      at(compileRoutes([cond('c', '/*', { headers: { 'set-cookie': ['a'] } })]), '', { 'set-cookie': ['a'] }),
    ).toBeNull();
  });

  it('the first route in declaration order whose path, method, host and headers all hold wins', () => {
    const table = compileRoutes([
      cond('acme-writes', '/v1/*', {
        host: ['api.example.com'],
        headers: { 'x-tenant': ['acme'] },
        methods: ['POST'],
      }),
      cond('acme', '/v1/*', { host: ['api.example.com'], headers: { 'x-tenant': ['acme'] } }),
      cond('api-exact', '/v1/x', { host: ['api.example.com'] }),
      cond('any-tenant', '/v1/*', { host: ['*.example.com', 'api.example.com'] }),
      route('rest', '/*'),
    ]);
    const acme = { 'x-tenant': 'acme' };
    expect([
      at(table, 'api.example.com', acme, 'POST'),
      at(table, 'api.example.com', acme, 'GET'),
      at(table, 'api.example.com', {}, 'GET'),
      at(table, 'api.example.com', {}, 'GET', '/v1/y'),
      at(table, 'b.example.com', acme, 'POST'),
      at(table, 'other.test', acme, 'POST'),
    ]).toEqual(['acme-writes', 'acme', 'api-exact', 'any-tenant', 'any-tenant', 'rest']);
  });

  it('lists the headers routes compare, Host among them when a route matches by host', () => {
    expect([...compileRoutes([route('a', '/*')]).conditionHeaders]).toEqual([]);
    const table = compileRoutes([
      cond('a', '/a', { headers: { 'x-tenant': ['a'] } }),
      cond('b', '/b', { host: ['b.test'], headers: { 'x-env': ['p'], 'x-tenant': ['b'] } }),
    ]);
    expect([...table.conditionHeaders].sort()).toEqual(['host', 'x-env', 'x-tenant']);
  });

  it('mismatch says which condition a route failed on', () => {
    const spec = cond('c', '/v1/*', { methods: ['GET'], host: ['a.test'], headers: { 'x-t': ['1'] } }).match;
    const req = (path: string, method: string, host: string, headers: Record<string, string> = {}) => ({
      method,
      path,
      host,
      headers,
    });
    expect(mismatch(spec, req('/v2', 'GET', 'a.test'))).toBe('path');
    expect(mismatch(spec, req('/v1/x', 'POST', 'a.test'))).toBe('method');
    expect(mismatch(spec, req('/v1/x', 'HEAD', 'b.test'))).toBe('host');
    expect(mismatch(spec, req('/v1', 'GET', 'A.TEST:1', { 'x-t': '2' }))).toBe('x-t');
    expect(mismatch(spec, req('/v1/x', 'GET', 'a.test.', { 'x-t': '1' }))).toBeNull();
  });

  it('agrees with a linear scan when routes share paths and differ by host and header', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const hosts = ['a.test', 'b.test', '*.test', '*.a.test'];
    const paths = ['/v1/*', '/v1/x', '/v2/*', '/*'];
    const routes = Array.from({ length: 200 }, (_, i) =>
      cond(`r${i}`, paths[rand(paths.length)]!, {
        ...(rand(2) === 0 ? { host: [hosts[rand(hosts.length)]!] } : {}),
        ...(rand(2) === 0 ? { headers: { 'x-t': [String(rand(3))] } } : {}),
        ...(rand(3) === 0 ? { methods: ['POST'] } : {}),
      }),
    );
    const table = compileRoutes(routes);
    const requestHosts = ['a.test', 'A.TEST.:80', 'x.a.test', 'b.test', 'c.test', 'test', '', 'evil.com'];
    for (let i = 0; i < 3_000; i++) {
      const request = {
        method: rand(2) === 0 ? 'GET' : 'POST',
        path: ['/v1/x', '/v1/y', '/v2/z', '/other'][rand(4)]!,
        host: requestHosts[rand(requestHosts.length)]!,
        headers: rand(4) === 0 ? {} : { 'x-t': String(rand(3)) },
      };
      const expected = routes.find((r) => mismatch(r.match, request) === null)?.name;
      expect(table.match(request.method, request.path, request.host, request.headers)?.name).toBe(expected);
    }
  });
});
