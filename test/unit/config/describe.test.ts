import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { explainRequest, parseHeaderArg, summarizePolicy } from '../../../proxy/config/describe.js';
import { parsePolicy } from '../../../proxy/config/load.js';
import type { Policy } from '../../../proxy/config/schema.js';

const TEXT = `
store: { type: redis, url: "redis://:pw@127.0.0.1:6379", on_error: deny }
upstreams:
  transcriber:
    url: http://127.0.0.1:8000
  api:
    url: http://127.0.0.1:3000
    timeouts: { connect: 500ms, response: 90s }
    breaker: { failure_threshold: 3, timeout: 30s, failure_statuses: [], failure_rate: { threshold: 0.5, window: 1m, minimum_calls: 10 } }
routes:
  - name: transcribe
    match: { path: /transcribe, methods: [POST] }
    upstream: transcriber
    max_body: 200mb
    limits:
      hourly: 100
      daily: 1000
      windows: [{ name: burst, limit: 10, per: 1m }]
  - name: search
    match: { path: /v1/search, methods: [GET, HEAD] }
    upstream: api
    limits: { key: "header:X-API-Key", hourly: 50, algorithm: sliding-counter, shadow: true }
  - name: health
    match: { path: /healthz }
    upstream: api
`;

function load(): Policy {
  const result = parsePolicy(TEXT, 'p.yaml', {});
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.policy;
}

describe('summarizePolicy (floodgate validate)', () => {
  it('lists routes, limits and upstreams, with secrets hidden', () => {
    expect(summarizePolicy('p.yaml', load())).toBe(
      [
        'p.yaml: ok, 3 routes, 2 upstreams',
        '  listen 127.0.0.1:8080, admin 127.0.0.1:9090, store redis redis://:***@127.0.0.1:6379 (on_error deny)',
        '  routes:',
        '    transcribe  POST      /transcribe  -> transcriber  per ip: hourly 100/1h, daily 1000/1d, burst 10/1m, max_body 200mb',
        '    search      GET,HEAD  /v1/search   -> api          per header x-api-key: hourly 50/1h (sliding-counter, shadow)',
        '    health      *         /healthz     -> api          unlimited',
        '  upstreams:',
        '    transcriber  http://127.0.0.1:8000  breaker 5 failures -> open 1m',
        '    api          http://127.0.0.1:3000  breaker 3 failures -> open 30s, or by rate',
      ].join('\n'),
    );
  });

  it('names the memory store and its cap, and the credentials-free form of a Redis URL', () => {
    const summary = (text: string) => {
      const r = parsePolicy(text, 'p.yaml', {});
      if (!r.ok) throw new Error(r.errors.join('\n'));
      return summarizePolicy('p.yaml', r.policy).split('\n')[1];
    };
    const memory = TEXT.replace(/^store: .*$/m, 'store: { max_keys: 5000 }');
    expect(summary(memory)).toBe(
      '  listen 127.0.0.1:8080, admin 127.0.0.1:9090, store memory (max_keys 5000)',
    );
    const local = TEXT.replace(/^store: .*$/m, 'store: { type: redis, url: "redis://r:6379/0?password=pw" }');
    expect(summary(local)).toBe(
      '  listen 127.0.0.1:8080, admin 127.0.0.1:9090, store redis redis://r:6379/0?password=*** (on_error local, max_keys 100000)',
    );
  });
});

describe('explainRequest (floodgate explain)', () => {
  it('an ip-keyed route with its upstream and breaker', () => {
    expect(explainRequest(load(), { method: 'post', path: '/transcribe' })).toBe(
      [
        'POST /transcribe',
        'route: transcribe (routes[0]: /transcribe, POST)',
        'limits: hourly 100 per 1h, daily 1000 per 1d, burst 10 per 1m (sliding-log)',
        'key: client ip',
        'max_body: 200mb',
        'upstream: transcriber http://127.0.0.1:8000',
        '  timeouts: connect 2s, response 1m, idle 30s',
        '  breaker: opens after 5 consecutive failures (connect errors, timeouts and statuses 502, 503, 504)',
        '  breaker: stays open 1m, then admits 3 probes at once; 2 successes close it',
      ].join('\n'),
    );
  });

  it('a header-keyed shadow route, with the header sent', () => {
    expect(
      explainRequest(load(), { method: 'GET', path: '/v1/search?q=x', headers: { 'X-Api-Key': 'key-123' } }),
    ).toBe(
      [
        'GET /v1/search?q=x (matched as /v1/search)',
        'route: search (routes[1]: /v1/search, GET, HEAD)',
        'limits: hourly 50 per 1h (sliding-counter)',
        'shadow: yes, requests over the limit are counted and reported, never rejected',
        'key: header x-api-key = key-123',
        'max_body: unlimited',
        'upstream: api http://127.0.0.1:3000',
        '  timeouts: connect 500ms, response 90s, idle 30s',
        '  breaker: opens after 3 consecutive failures (connect errors, timeouts)',
        '  breaker: also opens when 50% of calls fail over 1m (from 10 calls)',
        '  breaker: stays open 30s, then admits 3 probes at once; 2 successes close it',
      ].join('\n'),
    );
  });

  it('a header-keyed route without the header falls back to the client ip', () => {
    const text = explainRequest(load(), { method: 'HEAD', path: '/v1/search' });
    expect(text.split('\n')[4]).toBe('key: header x-api-key (not sent, so counted by client ip)');
  });

  it('a route without limits', () => {
    expect(explainRequest(load(), { method: 'GET', path: '/healthz' }).split('\n').slice(0, 4)).toEqual([
      'GET /healthz',
      'route: health (routes[2]: /healthz, any method)',
      'limits: none, forwarded unlimited',
      'max_body: unlimited',
    ]);
  });

  it('no route: the path or the method does not match', () => {
    expect(explainRequest(load(), { method: 'GET', path: '/transcribe' })).toBe(
      'GET /transcribe\nno route: the proxy answers 404 {"error":"No route"}',
    );
    expect(explainRequest(load(), { method: 'GET', path: '/nope' })).toBe(
      'GET /nope\nno route: the proxy answers 404 {"error":"No route"}',
    );
  });

  it('matches the path the proxy would see, not the spelling', () => {
    expect(
      explainRequest(load(), { method: 'POST', path: '/x/../Transcribe' }).split('\n').slice(0, 2),
    ).toEqual([
      'POST /x/../Transcribe (matched as /transcribe)',
      'route: transcribe (routes[0]: /transcribe, POST)',
    ]);
  });

  it('refuses a path with an encoded slash or backslash, which upstreams read two ways', () => {
    for (const path of ['/x/..%2FTranscribe', '/transcribe%5cx', '/x%2f..%2ftranscribe']) {
      expect(explainRequest(load(), { method: 'POST', path })).toBe(
        `POST ${path}\nrefused: an encoded slash or backslash in the path; the proxy answers 400 {"error":"Bad request"}`,
      );
    }
    // Double-encoded is not a separator after one decoding: routed as it is.
    expect(explainRequest(load(), { method: 'POST', path: '/transcribe%252F' }).split('\n')[1]).toBe(
      'no route: the proxy answers 404 {"error":"No route"}',
    );
  });
});

describe('explainRequest with plans, allowlists and composite keys (config/plans.yaml)', () => {
  const plans = (): Policy => {
    const r = parsePolicy(
      readFileSync(new URL('../../../config/plans.yaml', import.meta.url), 'utf8'),
      'plans.yaml',
      {},
    );
    if (!r.ok) throw new Error(r.errors.join('\n'));
    return r.policy;
  };
  const explain = (path: string, headers: Record<string, string> = {}, clientIp?: string, method = 'GET') =>
    explainRequest(plans(), { method, path, headers, clientIp })
      .split('\n')
      .filter((l) => !/^(upstream|max_body| {2})/.test(l));

  it('a header-chosen plan, the default for an unlisted one, and the key parts with their values', () => {
    expect(explain('/v1/users/42', { 'X-Plan': 'pro', 'x-api-key': 'k1' })).toEqual([
      'GET /v1/users/42',
      'route: users (routes[0]: /v1/users/*, any method)',
      'limits: hourly 10000 per 1h, daily 100000 per 1d (sliding-log)',
      "plan: pro (header x-plan = pro) from a trusted proxy (client_ip.trusted_proxies); the default from anyone else (a client's own header is ignored)",
      'key: header x-api-key = k1, ip = the client ip (counted per combination)',
      'allowlist: clients in 10.0.0.0/8, fd00::/8, 192.0.2.10/32 are never limited (give --ip to check one)',
    ]);
    expect(explain('/v1/users/42', { 'X-Plan': 'PRO' }, '203.0.113.7')).toEqual([
      'GET /v1/users/42',
      'route: users (routes[0]: /v1/users/*, any method)',
      'limits: hourly 100 per 1h, daily 1000 per 1d (sliding-log)',
      'plan: default (header x-plan = PRO is not a listed plan; listed: pro, internal)',
      'key: header x-api-key (not sent, counted as empty), ip = 203.0.113.7 (counted per combination)',
    ]);
  });

  it('allowlisted by address (top level or the route) or by key: no limits, no headers', () => {
    expect(explain('/v1/users/42', { 'X-Plan': 'pro' }, '10.1.2.3')[2]).toBe(
      'limits: none for this request, allowlisted (client ip 10.1.2.3 is in the top-level allowlist): forwarded uncounted, without rate-limit headers',
    );
    expect(explain('/v1/users/42', {}, '192.0.2.10')[2]).toBe(
      "limits: none for this request, allowlisted (client ip 192.0.2.10 is in this route's allowlist): forwarded uncounted, without rate-limit headers",
    );
    // 192.0.2.10 is allowlisted on users only.
    expect(explain('/v1/search', {}, '192.0.2.10')[2]).toBe('limits: hourly 1000 per 1h (sliding-log)');
    expect(explain('/v1/search', { 'X-API-Key': 'k-healthcheck' })).toEqual([
      'GET /v1/search',
      'route: search (routes[1]: /v1/search, GET)',
      "limits: none for this request, allowlisted (header:x-api-key is in this route's allowlist keys): forwarded uncounted, without rate-limit headers",
      'key: header x-api-key = k-healthcheck',
    ]);
  });

  it('a plan chosen by the key itself', () => {
    expect(explain('/v1/search', { 'X-API-Key': 'k-partner' }).slice(2, 5)).toEqual([
      'limits: hourly 50000 per 1h (sliding-log)',
      "plan: k-partner (by the key's value)",
      'key: header x-api-key = k-partner',
    ]);
    expect(explain('/v1/search').slice(2, 5)).toEqual([
      'limits: hourly 1000 per 1h (sliding-log)',
      'plan: default (no header:x-api-key to choose a plan by)',
      'key: header x-api-key (not sent, so counted by client ip)',
    ]);
  });

  it('a path key compares its allowlist and plans with the segment as counted, escapes and all', () => {
    const r = parsePolicy(
      `upstreams: { api: { url: "http://127.0.0.1:3000" } }
routes:
  - name: accounts
    match: { path: /a/* }
    upstream: api
    limits:
      key: path:2
      hourly: 1
      plans: { by: key, values: { "%C3%A9t%C3%A9": { hourly: 5 }, "Big": { hourly: 7 } } }
      allowlist: { keys: ["100%25"] }
`,
      'p.yaml',
      {},
    );
    if (!r.ok) throw new Error(r.errors.join('\n'));
    const line = (path: string) => explainRequest(r.policy, { method: 'GET', path }).split('\n')[3];
    expect(line('/a/%c3%a9T%C3%A9')).toBe("plan: %C3%A9t%C3%A9 (by the key's value)");
    expect(line('/a/BIG/x')).toBe("plan: Big (by the key's value)");
    expect(explainRequest(r.policy, { method: 'GET', path: '/a/100%25' }).split('\n')[2]).toContain(
      'allowlisted',
    );
    expect(explainRequest(r.policy, { method: 'GET', path: '/a/100' }).split('\n')[2]).toBe(
      'limits: hourly 1 per 1h (sliding-log)',
    );
  });

  it('path and query parts as the proxy reads them; a repeated parameter is refused', () => {
    expect(explain('/v1/accounts/%41CME/orders')[3]).toBe('key: path:3 = acme');
    expect(explain('/v1/accounts')[3]).toBe(
      'key: path:3 (no such segment, so every request without it shares one count)',
    );
    expect(explain('/v1/export?tenant=a+b%21')[3]).toBe(
      'key: query tenant = a b!, ip = the client ip (counted per combination)',
    );
    expect(explain('/v1/export?tenant=a&tenant=b').slice(2)).toEqual([
      'key: query:tenant (given more than once), ip = the client ip (counted per combination)',
      'refused: more than one tenant query parameter; the proxy answers 400 {"error":"Bad request"}',
    ]);
  });
});

describe('the cost of a request, in validate and explain', () => {
  const COSTS = `
upstreams:
  app: { url: http://127.0.0.1:8000 }
routes:
  - name: upload
    match: { path: /upload }
    upstream: app
    limits: { hourly: 10, cost: 5 }
  - name: api
    match: { path: /v1/* }
    upstream: app
    limits: { hourly: 100, cost: { header: X-Request-Cost, default: 2, max: 50 } }
`;
  const policy = (): Policy => {
    const r = parsePolicy(COSTS, 'p.yaml', {});
    if (!r.ok) throw new Error(r.errors.join('\n'));
    return r.policy;
  };

  it('validate shows a cost other than 1 next to the windows', () => {
    expect(summarizePolicy('p.yaml', policy()).split('\n').slice(3, 5)).toEqual([
      '    upload  *  /upload  -> app  per ip: hourly 10/1h (cost 5)',
      '    api     *  /v1/*    -> app  per ip: hourly 100/1h (cost from x-request-cost: 1 to 50, default 2)',
    ]);
  });

  it('explain shows what the request would count', () => {
    const cost = (path: string, headers?: Record<string, string>) =>
      explainRequest(policy(), { method: 'POST', path, headers })
        .split('\n')
        .find((l) => l.startsWith('cost: '));
    expect(cost('/upload')).toBe('cost: 5 units per request');
    expect(cost('/v1/x')).toBe('cost: header x-request-cost (not sent, so 2, the default)');
    expect(cost('/v1/x', { 'X-Request-Cost': '7' })).toBe(
      "cost: header x-request-cost = 7 from a trusted proxy (client_ip.trusted_proxies); 2, the default, from anyone else (a client's own header is ignored)",
    );
    expect(cost('/v1/x', { 'x-request-cost': '1e3' })).toBe(
      'cost: header x-request-cost = "1e3" is not a whole number from 1 to 50: refused with 400 from a trusted proxy; ' +
        "2, the default, from anyone else (a client's own header is ignored)",
    );
    // The default cost, 1, is worth no line.
    expect(explainRequest(load(), { method: 'POST', path: '/transcribe' })).not.toContain('cost:');
  });
});

describe('explain and validate with host and header conditions and a custom rejection', () => {
  const CONDITIONS = `
upstreams:
  api: { url: "http://127.0.0.1:3000" }
routes:
  - name: tenant-api
    match: { path: /v1/*, methods: [GET, POST], host: api.example.com, headers: { X-Tenant: acme } }
    upstream: api
    limits:
      hourly: 100
      client_headers: ietf
      rejection:
        status: 403
        body: { error: quota exhausted, retry_in: "{{retry_after}}" }
        headers: { X-Quota-Reason: "{{window}}" }
  - name: tenants
    match: { path: /v1/*, host: "*.example.com" }
    upstream: api
`;
  const policy = (): Policy => {
    const r = parsePolicy(CONDITIONS, 'c.yaml', {});
    if (!r.ok) throw new Error(r.errors.join('\n'));
    return r.policy;
  };

  it('names the route, the conditions that held and the rejection settings', () => {
    const text = explainRequest(policy(), {
      method: 'GET',
      path: '/v1/items',
      headers: { Host: 'API.Example.com.:8443', 'x-TENANT': 'acme' },
    });
    expect(text.split('\n').slice(0, 7)).toEqual([
      'GET /v1/items',
      'route: tenant-api (routes[0]: /v1/*, GET, POST)',
      'matched: host api.example.com (Host "API.Example.com.:8443") matches api.example.com; header x-tenant: acme',
      'limits: hourly 100 per 1h (sliding-log)',
      'key: client ip',
      'rejection: 403, body {"error":"quota exhausted","retry_in":"{{retry_after}}"}, headers x-quota-reason: {{window}}',
      'client headers: ietf (RateLimit-Policy, RateLimit)',
    ]);
  });

  it('says which routes a request passed over, and why', () => {
    const other = explainRequest(policy(), {
      method: 'GET',
      path: '/v1/items',
      headers: { host: 'api.example.com', 'x-tenant': 'globex' },
    });
    expect(other.split('\n').slice(0, 4)).toEqual([
      'GET /v1/items',
      'passed over: tenant-api (routes[0]: /v1/*): x-tenant "globex" is not acme',
      'route: tenants (routes[1]: /v1/*, any method)',
      'matched: host api.example.com matches *.example.com',
    ]);
    // An absolute-form target's authority is the host compared, as in the proxy.
    expect(explainRequest(policy(), { method: 'GET', path: 'http://evil.test/v1/items' })).toBe(
      [
        'GET http://evil.test/v1/items (matched as /v1/items)',
        'passed over: tenant-api (routes[0]: /v1/*): Host "evil.test" is not api.example.com',
        'passed over: tenants (routes[1]: /v1/*): Host "evil.test" is not *.example.com',
        'no route: the proxy answers 404 {"error":"No route"}',
      ].join('\n'),
    );
    expect(explainRequest(policy(), { method: 'GET', path: '/v1/items' }).split('\n')[1]).toBe(
      'passed over: tenant-api (routes[0]: /v1/*): no Host (wants api.example.com)',
    );
  });

  it('validate shows conditions beside the path, and a rejection status or header mode that is not the default', () => {
    expect(summarizePolicy('c.yaml', policy()).split('\n').slice(3, 5)).toEqual([
      '    tenant-api  GET,POST  /v1/* (host api.example.com, x-tenant=acme)  -> api  per ip: hourly 100/1h (rejects 403, client headers ietf)',
      '    tenants     *         /v1/* (host *.example.com)                   -> api  unlimited',
    ]);
  });
});

describe('parseHeaderArg', () => {
  it('splits curl-style headers', () => {
    expect(parseHeaderArg('X-API-Key: abc:def ')).toEqual(['X-API-Key', 'abc:def']);
    expect(parseHeaderArg('X-Empty:')).toEqual(['X-Empty', '']);
    expect(parseHeaderArg('no colon')).toBeUndefined();
    expect(parseHeaderArg(': value')).toBeUndefined();
  });
});
