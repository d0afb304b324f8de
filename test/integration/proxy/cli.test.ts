// The `floodgate validate` and `floodgate explain` commands as a user runs them: exit codes, the summary
// on stdout, and FILE:LINE:COL errors on stderr.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../helpers/proxy.js';

// The example configs expand these; pin them so the output does not depend on the caller's shell.
const ENV = {
  REDIS_URL: 'redis://127.0.0.1:6379',
  FLOODGATE_STORE: undefined,
  ADMIN_TOKEN: undefined,
  API_UPSTREAM: undefined,
};

/** The `# expect:` lines of a fixture: the exact errors it must produce. */
async function expectedErrors(fixture: string): Promise<string[]> {
  const text = await readFile(fixture, 'utf8');
  return [...text.matchAll(/^# expect: (.*)$/gm)].map((m) => m[1]!);
}

describe('floodgate validate', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await tempDir('cli');
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 with a summary of routes, limits and upstreams for the example configs', async () => {
    const r = await runCli(
      ['validate', 'config/proxy.yaml', 'config/api-keys.yaml', 'config/plans.yaml'],
      ENV,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines).toContain('config/proxy.yaml: ok, 6 routes, 2 upstreams');
    expect(lines).toContain('config/api-keys.yaml: ok, 5 routes, 1 upstream');
    expect(lines).toContain('config/plans.yaml: ok, 4 routes, 1 upstream');
    // Plan values and allowlisted keys may be API keys: validate counts them, never prints them.
    expect(r.stdout).toMatch(
      /^ {4}users +\* +\/v1\/users\/\* +-> api +per header x-api-key \+ ip: hourly 100\/1h, daily 1000\/1d, 2 plans by header x-plan, 1 allowlist entry$/m,
    );
    expect(r.stdout).toMatch(
      /^ {4}search .*per header x-api-key: hourly 1000\/1h, 1 plan by key, 1 allowlist entry$/m,
    );
    expect(r.stdout).not.toContain('k-partner');
    expect(r.stdout).toMatch(
      /^ {4}transcribe +POST +\/transcribe +-> transcriber +per ip: hourly 100\/1h, daily 1000\/1d, burst 10\/1m, max_body 200mb$/m,
    );
    expect(r.stdout).toMatch(/^ {4}transcriber +http:\/\/127\.0\.0\.1:8000 +breaker 5 failures -> open 1m$/m);
    expect(r.stdout).toMatch(
      /^ {4}openai-transcriptions +POST +\/v1\/audio\/transcriptions +-> transcriber-openai +per ip: hourly 100\/1h, daily 1000\/1d, burst 10\/1m, max_body 200mb$/m,
    );
    expect(r.stdout).toMatch(/^ {4}health +GET +\/healthz +-> api +unlimited$/m);
    expect(r.stdout).toMatch(
      /^ {4}reports .*per header x-api-key: hourly 100\/1h, daily 500\/1d \(shadow\)$/m,
    );
  });

  it('exits 1 with one FILE:LINE:COL line per problem on stderr', async () => {
    const fixture = 'test/fixtures/config/several-errors.yaml';
    const r = await runCli(['validate', fixture], ENV);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const expected = await expectedErrors(fixture);
    expect(expected.length).toBeGreaterThan(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual(expected);
  });

  it('reports a variable, a schema and a reference error of one file in one run, in file order', async () => {
    const fixture = 'test/fixtures/config/every-stage-in-one-run.yaml';
    const r = await runCli(['validate', 'config/proxy.yaml', fixture], {
      ...ENV,
      FLOODGATE_TEST_UNSET_HOURLY: undefined,
    });
    expect(r.code).toBe(1);
    // The valid file still gets its summary; the broken one only its errors, all of them.
    expect(r.stdout).toMatch(/^config\/proxy\.yaml: ok, 6 routes, 2 upstreams$/m);
    expect(r.stdout).not.toContain(fixture);
    const expected = await expectedErrors(fixture);
    expect(expected.map((e) => e.replace(/^.*?:\d+:\d+: /, '').split(' ')[0])).toEqual([
      'store.timeout:',
      'routes[0].upstream:',
      'environment',
    ]);
    expect(r.stderr.trimEnd().split('\n')).toEqual(expected);
  });

  it('reports a broken file among valid ones, and still exits 1', async () => {
    const broken = join(dir, 'broken.yaml');
    await writeFile(
      broken,
      [
        'upstreams:',
        '  app: { url: http://127.0.0.1:3000 }',
        'routes:',
        '  - name: api',
        '    match: { path: /api/* }',
        '    upstream: nowhere',
        '    limits: { hourly: 10, daily: 50 }',
        '',
      ].join('\n'),
    );
    const r = await runCli(['validate', 'config/proxy.yaml', broken], ENV);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('config/proxy.yaml: ok');
    expect(r.stderr).toBe(`${broken}:6:15: routes[0].upstream: unknown upstream "nowhere" (defined: app)\n`);
  });
});

describe('floodgate explain', () => {
  it('prints the route, limits, key and upstream with its breaker', async () => {
    const r = await runCli(['explain', '--config', 'config/proxy.yaml', 'POST', '/a/../TRANSCRIBE'], ENV);
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n')).toEqual([
      'POST /a/../TRANSCRIBE (matched as /transcribe)',
      'route: transcribe (routes[0]: /transcribe, POST)',
      'limits: hourly 100 per 1h, daily 1000 per 1d, burst 10 per 1m (sliding-log)',
      'key: client ip',
      'max_body: 200mb',
      'upstream: transcriber http://127.0.0.1:8000',
      '  timeouts: connect 2s, response 1m, idle 30s',
      '  breaker: opens after 5 consecutive failures (connect errors, timeouts and statuses 502, 503, 504)',
      '  breaker: stays open 1m, then admits 3 probes at once; 2 successes close it',
    ]);
  });

  it('names the header value a header-keyed route counts by', async () => {
    const [withKey, without] = await Promise.all([
      runCli(
        ['explain', '--config', 'config/api-keys.yaml', '-H', 'X-API-Key: abc', 'GET', '/v1/search'],
        ENV,
      ),
      runCli(['explain', '--config', 'config/api-keys.yaml', 'GET', '/v1/reports/q1'], ENV),
    ]);
    expect(withKey.code).toBe(0);
    expect(withKey.stdout).toContain('route: search (routes[1]: /v1/search, GET)\n');
    expect(withKey.stdout).toContain('key: header x-api-key = abc\n');
    expect(withKey.stdout).toContain('upstream: api http://127.0.0.1:3000\n');

    expect(without.stdout).toContain('route: reports');
    expect(without.stdout).toContain('key: header x-api-key (not sent, so counted by client ip)\n');
    expect(without.stdout).toContain('shadow: yes');
  });

  it('shows the plan a request gets, the key parts with their values, or that it is allowlisted', async () => {
    const [pro, allowed, badIp] = await Promise.all([
      runCli(
        [
          'explain',
          '--config',
          'config/plans.yaml',
          'GET',
          '/v1/users/42',
          '-H',
          'X-Plan: pro',
          '-H',
          'X-API-Key: k1',
        ],
        ENV,
      ),
      runCli(
        ['explain', '--config', 'config/plans.yaml', '--ip', '::ffff:10.1.2.3', 'GET', '/v1/users/42'],
        ENV,
      ),
      runCli(['explain', '--config', 'config/plans.yaml', '--ip', '10.1.2', 'GET', '/v1/users/42'], ENV),
    ]);
    expect(pro.code).toBe(0);
    expect(pro.stdout.split('\n').slice(0, 6)).toEqual([
      'GET /v1/users/42',
      'route: users (routes[0]: /v1/users/*, any method)',
      'limits: hourly 10000 per 1h, daily 100000 per 1d (sliding-log)',
      "plan: pro (header x-plan = pro) from a trusted proxy (client_ip.trusted_proxies); the default from anyone else (a client's own header is ignored)",
      'key: header x-api-key = k1, ip = the client ip (counted per combination)',
      'allowlist: clients in 10.0.0.0/8, fd00::/8, 192.0.2.10/32 are never limited (give --ip to check one)',
    ]);
    expect(allowed.stdout).toContain(
      'limits: none for this request, allowlisted (client ip 10.1.2.3 is in the top-level allowlist): forwarded uncounted, without rate-limit headers\n',
    );
    expect(badIp.code).toBe(1);
    expect(badIp.stderr).toContain("expected an IPv4 or IPv6 address, got '10.1.2'");
  });

  it('says when no route matches, and fails on a broken policy', async () => {
    const fixture = 'test/fixtures/config/several-errors.yaml';
    const [none, broken] = await Promise.all([
      runCli(['explain', '--config', 'config/proxy.yaml', 'GET', '/nope'], ENV),
      runCli(['explain', '--config', fixture, 'GET', '/'], ENV),
    ]);
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('GET /nope\nno route: the proxy answers 404 {"error":"No route"}\n');

    expect(broken.code).toBe(1);
    expect(broken.stderr.trimEnd().split('\n')).toEqual(await expectedErrors(fixture));
  });
});
