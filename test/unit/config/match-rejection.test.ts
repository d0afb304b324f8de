// The policy's host and header conditions and its rejection settings: what is accepted, how it is
// normalized, and each refusal with its position and message.
import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../proxy/config/load.js';
import type { Policy } from '../../../proxy/config/schema.js';

/** A one-route policy whose route carries `match` (extra lines) and `limits` (extra lines). */
function policy(match: string, limits = ''): string {
  return [
    'upstreams:',
    '  b: { url: "http://127.0.0.1:1" }',
    'routes:',
    '  - name: r',
    '    upstream: b',
    '    match:',
    '      path: /v1/*',
    ...match
      .split('\n')
      .filter(Boolean)
      .map((l) => `      ${l}`),
    ...(limits
      ? [
          '    limits:',
          '      hourly: 10',
          ...limits
            .split('\n')
            .filter(Boolean)
            .map((l) => `      ${l}`),
        ]
      : []),
  ].join('\n');
}

function errors(text: string, env: Record<string, string> = {}): readonly string[] {
  const r = parsePolicy(text, 'p.yaml', env);
  return r.ok ? [] : r.errors;
}

function valid(text: string, env: Record<string, string> = {}): Policy {
  const r = parsePolicy(text, 'p.yaml', env);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.policy;
}

describe('match.host and match.headers', () => {
  it('normalizes hosts and header names, deduplicates values, keeps value case', () => {
    const p = valid(
      policy(
        'host: [API.Example.com., "*.Example.COM", "::1", api.example.com]\nheaders: { X-Tenant: Acme, X-Env: [prod, staging, prod] }',
      ),
    );
    expect(p.routes[0]!.match.host).toEqual(['api.example.com', '*.example.com', '[::1]']);
    expect(p.routes[0]!.match.headers).toEqual([
      { name: 'x-tenant', values: ['Acme'] },
      { name: 'x-env', values: ['prod', 'staging'] },
    ]);
  });

  it('a route without conditions has none', () => {
    expect(valid(policy('')).routes[0]!.match).toMatchObject({ host: null, headers: null });
  });

  it.each([
    ['host: []', '8:13: routes[0].match.host: hosts must not be an empty list'],
    [
      'host: [a.test, "a b"]',
      '8:22: routes[0].match.host[1]: invalid host "a b": use letters, digits, "-" and "_" in dot-separated labels of at most 63',
    ],
    [
      'host: 7',
      '8:13: routes[0].match.host: expected a host name (api.example.com), a wildcard (*.example.com) or an IP address, got 7',
    ],
    [
      'headers: [X-Tenant]',
      '8:16: routes[0].match.headers: expected a map of header names to values, got a list',
    ],
    [
      'headers: { X-Tenant: "" }',
      '8:28: routes[0].match.headers.X-Tenant: a header value to match must not be empty',
    ],
    [
      'headers: { X-Tenant: [] }',
      '8:28: routes[0].match.headers.X-Tenant: a header condition needs at least one value',
    ],
    [
      'headers: { X-Tenant: "acme\\t" }',
      '8:28: routes[0].match.headers.X-Tenant: header value "acme\\t" starts or ends with a space, which a request\'s value never does',
    ],
    [
      'headers: { X-Tenant: " acme" }',
      '8:28: routes[0].match.headers.X-Tenant: header value " acme" starts or ends with a space, which a request\'s value never does',
    ],
    [
      'headers: { X-Tenant: "a\\u0000b" }',
      '8:28: routes[0].match.headers.X-Tenant: header value "a\\u0000b" holds a control character (CR, LF, NUL…), which no header may carry',
    ],
    [
      'headers: { X-Tenant: "café" }',
      '8:28: routes[0].match.headers.X-Tenant: header value "café" holds a character outside printable ASCII',
    ],
    [
      'headers: { X-Version: 2 }',
      '8:29: routes[0].match.headers.X-Version: expected a header value as text (quote it: "2"), got 2',
    ],
    [
      'headers: { X-Tenant: [a, 1] }',
      '8:28: routes[0].match.headers.X-Tenant: expected a header value as text (quote it: "1"), got 1',
    ],
    [
      'headers: { X-Tenant: a, x-tenant: b }',
      '8:31: routes[0].match.headers.x-tenant: header x-tenant is already listed as X-Tenant (header names are case-insensitive)',
    ],
    [
      'headers: { "X-Tenant:": a }',
      '8:18: routes[0].match.headers.X-Tenant:: invalid header name "X-Tenant:"; use letters, digits and !#$%&\'*+-.^_`|~',
    ],
  ])('%s', (match, error) => {
    expect(errors(policy(match))).toEqual([`p.yaml:${error}`]);
  });

  it('caps hosts, headers and values per route, and the length of a value', () => {
    const hosts = Array.from({ length: 65 }, (_, i) => `h${i}.test`).join(', ');
    expect(errors(policy(`host: [${hosts}]`))).toEqual([
      'p.yaml:8:13: routes[0].match.host: at most 64 hosts are allowed',
    ]);
    const headers = Array.from({ length: 17 }, (_, i) => `X-H${i}: v`).join(', ');
    expect(errors(policy(`headers: { ${headers} }`))).toEqual([
      'p.yaml:8:16: routes[0].match.headers: at most 16 headers are allowed',
    ]);
    const values = Array.from({ length: 65 }, (_, i) => `v${i}`).join(', ');
    expect(errors(policy(`headers: { X-T: [${values}] }`))).toEqual([
      'p.yaml:8:23: routes[0].match.headers.X-T: at most 64 values are allowed',
    ]);
    expect(errors(policy(`headers: { X-T: ${'a'.repeat(1025)} }`))[0]).toMatch(
      /is longer than 1024 characters$/,
    );
  });

  describe('a route that can never match', () => {
    const two = (a: string, b: string) =>
      [
        'upstreams:',
        '  b: { url: "http://127.0.0.1:1" }',
        'routes:',
        `  - { name: first, upstream: b, match: { path: /v1/*, ${a} } }`,
        `  - { name: second, upstream: b, match: { path: /v1/x, ${b} } }`,
      ].join('\n');
    const unreachable =
      'p.yaml:5:41: routes[1].match: route "second" can never match: routes[0] ("first") comes first and takes every request it would';

    it.each([
      ['methods: [GET]', 'host: a.test, methods: [GET]'],
      ['host: a.test', 'host: A.TEST.'],
      ['host: "*.test"', 'host: [a.test, "*.b.test"]'],
      ['headers: { X-T: [a, b] }', 'headers: { x-t: a, X-Other: c }'],
      ['host: a.test, headers: { X-T: a }', 'host: a.test, headers: { X-T: a }'],
    ])('%s before %s: refused', (a, b) => {
      expect(errors(two(a, b))).toEqual([unreachable]);
    });

    it.each([
      ['host: a.test', 'methods: [GET]'],
      ['host: a.test', 'host: b.test'],
      ['host: "*.test"', 'host: [a.test, other.example]'],
      ['host: a.test', 'host: "*.test"'],
      ['headers: { X-T: a }', 'headers: { X-T: [a, b] }'],
      ['headers: { X-T: a }', 'headers: { X-U: a }'],
      ['headers: { X-T: a }', 'host: a.test'],
    ])('%s before %s: reachable', (a, b) => {
      expect(errors(two(a, b))).toEqual([]);
    });
  });
});

describe('limits.client_headers and limits.rejection', () => {
  it('defaults: both header sets, 429, the default body, no extra headers', () => {
    expect(valid(policy('', 'key: ip')).routes[0]!.limits).toMatchObject({
      clientHeaders: 'both',
      rejection: { status: 429, body: null, headers: {} },
    });
  });

  it('takes a status, any JSON body template and extra headers', () => {
    const limits = valid(
      policy(
        '',
        [
          'client_headers: none',
          'rejection:',
          '  status: 503',
          '  body: { error: "quota exhausted", plan: free, retry_in: "{{retry_after}}", tags: [a, 1, true, null] }',
          '  headers: { X-Quota-Reason: "{{window}}", Cache-Control: no-store }',
        ].join('\n'),
      ),
    ).routes[0]!.limits!;
    expect(limits.clientHeaders).toBe('none');
    expect(limits.rejection).toEqual({
      status: 503,
      body: {
        error: 'quota exhausted',
        plan: 'free',
        retry_in: '{{retry_after}}',
        tags: ['a', 1, true, null],
      },
      headers: { 'x-quota-reason': '{{window}}', 'cache-control': 'no-store' },
    });
  });

  it("an environment variable still expands in a template; {{…}} is the template's own", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the policy's own ${VAR} syntax
    const limits = valid(policy('', 'rejection:\n  body: { plan: "${PLAN}", wait: "{{retry_after}}" }'), {
      PLAN: 'free',
    }).routes[0]!.limits!;
    expect(limits.rejection.body).toEqual({ plan: 'free', wait: '{{retry_after}}' });
  });

  it.each([
    [
      'status: 200',
      '11:17: routes[0].limits.rejection.status: expected a 4xx or 5xx status (400-599), e.g. 429 (the default), 403 or 503, got 200',
    ],
    [
      'status: 600',
      '11:17: routes[0].limits.rejection.status: expected a 4xx or 5xx status (400-599), e.g. 429 (the default), 403 or 503, got 600',
    ],
    [
      'status: "429"',
      '11:17: routes[0].limits.rejection.status: expected a 4xx or 5xx status (400-599), e.g. 429 (the default), 403 or 503, got "429"',
    ],
    [
      'status: 407',
      '11:17: routes[0].limits.rejection.status: status 407 needs a Proxy-Authenticate challenge; use 429 (the default), 403, 503 or another 4xx/5xx',
    ],
    [
      'status: 408',
      '11:17: routes[0].limits.rejection.status: status 408 makes clients retry at once; use 429 (the default), 403, 503 or another 4xx/5xx',
    ],
    [
      'body: { "{{limit}}": 1 }',
      '11:17: routes[0].limits.rejection.body.{{limit}}: placeholders go in values, not keys: "{{limit}}"',
    ],
    [
      'body: { a: [1, "{{limit"] }',
      '11:25: routes[0].limits.rejection.body.a[1]: malformed placeholder "{{limit"; use {{limit}}, {{window}}, {{retry_after}}, {{route}}',
    ],
    ['body: { n: .nan }', '11:20: routes[0].limits.rejection.body.n: expected a finite number, got NaN'],
    [
      'headers: { Content-Length: "1" }',
      '11:20: routes[0].limits.rejection.headers.Content-Length: header Content-Length is set by the proxy itself (or would break the answer); it cannot be a rejection header',
    ],
    [
      'headers: { ratelimit-policy: x }',
      '11:20: routes[0].limits.rejection.headers.ratelimit-policy: header ratelimit-policy is set by the proxy itself (or would break the answer); it cannot be a rejection header',
    ],
    [
      'headers: { X-RateLimit-Reset: "0" }',
      '11:20: routes[0].limits.rejection.headers.X-RateLimit-Reset: header X-RateLimit-Reset is set by the proxy itself (or would break the answer); it cannot be a rejection header',
    ],
    [
      'headers: { Transfer-Encoding: chunked }',
      '11:20: routes[0].limits.rejection.headers.Transfer-Encoding: header Transfer-Encoding is set by the proxy itself (or would break the answer); it cannot be a rejection header',
    ],
    [
      'headers: { Connection: close }',
      '11:20: routes[0].limits.rejection.headers.Connection: header Connection is set by the proxy itself (or would break the answer); it cannot be a rejection header',
    ],
    [
      'headers: { X-A: "1\\r\\nSet-Cookie: x=1" }',
      '11:25: routes[0].limits.rejection.headers.X-A: header value "1\\r\\nSet-Cookie: x=1" holds a control character (CR, LF, NUL…), which no header may carry',
    ],
    [
      'headers: { X-A: "{{limits}}" }',
      '11:25: routes[0].limits.rejection.headers.X-A: unknown placeholder {{limits}}; use {{limit}}, {{window}}, {{retry_after}}, {{route}}',
    ],
    [
      'headers: { X-A: 1 }',
      '11:25: routes[0].limits.rejection.headers.X-A: expected a header value as text (quote it: "1"), got 1',
    ],
    [
      'colour: red',
      '11:9: routes[0].limits.rejection: unknown key "colour" (allowed: status, body, headers)',
    ],
  ])('rejection %s', (line, error) => {
    expect(errors(policy('', `rejection:\n  ${line}`))).toEqual([`p.yaml:${error}`]);
  });

  it('a body template is at most 4 KiB as JSON', () => {
    const ok = valid(policy('', `rejection:\n  body: { e: "${'x'.repeat(4_000)}" }`));
    expect(ok.routes[0]!.limits!.rejection.body).toMatchObject({ e: expect.any(String) });
    expect(errors(policy('', `rejection:\n  body: { e: "${'x'.repeat(4_100)}" }`))).toEqual([
      'p.yaml:11:15: routes[0].limits.rejection.body: the body template is 4108 bytes as JSON, more than the 4096 allowed',
    ]);
  });

  it('reports every bad placeholder of a body in one run, each at its own place', () => {
    expect(
      errors(policy('', 'rejection:\n  body: { a: "x {{nope}}", b: ["{{limit}}", "{{route}} {{oops}}"] }')),
    ).toEqual([
      'p.yaml:11:23: routes[0].limits.rejection.body.a: unknown placeholder {{nope}}; use {{limit}}, {{window}}, {{retry_after}}, {{route}}',
      'p.yaml:11:62: routes[0].limits.rejection.body.b[1]: unknown placeholder {{oops}}; use {{limit}}, {{window}}, {{retry_after}}, {{route}}',
    ]);
  });
});
