import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../proxy/config/load.js';
import { compileRoutes, type RouteMatchSpec } from '../../../proxy/http/router.js';

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
