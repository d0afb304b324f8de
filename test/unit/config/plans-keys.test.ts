// The policy of plans, allowlists and composite keys: what the schema makes of valid YAML, the
// scopes that keep or drop counters across a reload, and the shapes each error takes.
import { describe, expect, it } from 'vitest';
import { type LoadResult, parsePolicy, redactPolicy } from '../../../proxy/config/load.js';
import type { Policy } from '../../../proxy/config/schema.js';
import { limiterScope } from '../../../proxy/http/compile-runtime.js';

function policy(limits: string, match = '/v1/users/*', top = ''): string {
  return `${top}
upstreams:
  api: { url: http://127.0.0.1:8000 }
routes:
  - name: api
    match: { path: ${match} }
    upstream: api
    limits:
${limits
  .trim()
  .split('\n')
  .map((l) => `      ${l}`)
  .join('\n')}
`;
}

function valid(result: LoadResult): Policy {
  if (!result.ok) throw new Error(`expected a valid policy, got:\n${result.errors.join('\n')}`);
  return result.policy;
}

const parse = (text: string) => parsePolicy(text, 'p.yaml', {});
const errors = (text: string) => {
  const r = parse(text);
  return r.ok ? [] : r.errors;
};

const FULL = `
key: [header:X-API-Key, ip]
hourly: 100
daily: 1000
plans:
  by: header:X-Plan
  values:
    pro: { hourly: 10000, daily: 100000 }
    k-internal: { hourly: 100000, windows: [{ name: burst, limit: 500, per: 1s }] }
allowlist:
  ips: [192.0.2.10]
`;

describe('keys, plans and allowlists in the policy', () => {
  it('normalizes the documented example', () => {
    const p = valid(parse(policy(FULL, '/v1/users/*', 'allowlist:\n  ips: [10.0.0.0/8, "fd00::/8"]')));
    expect(p.allowlist.ips.map((c) => c.cidr)).toEqual(['10.0.0.0/8', 'fd00::/8']);
    const l = p.routes[0]!.limits!;
    expect(l.key).toEqual([{ type: 'header', name: 'x-api-key' }, { type: 'ip' }]);
    expect(l.plans).toEqual({
      by: { type: 'header', name: 'x-plan' },
      values: [
        {
          value: 'pro',
          windows: [
            { name: 'hourly', limit: 10_000, windowMs: 3_600_000 },
            { name: 'daily', limit: 100_000, windowMs: 86_400_000 },
          ],
        },
        {
          value: 'k-internal',
          windows: [
            { name: 'hourly', limit: 100_000, windowMs: 3_600_000 },
            { name: 'burst', limit: 500, windowMs: 1_000 },
          ],
        },
      ],
    });
    expect(l.allowlist).toEqual({
      ips: [{ cidr: '192.0.2.10/32', address: '192.0.2.10', prefix: 32, family: 'ipv4' }],
      keys: [],
    });
  });

  it('reads every part kind, alone or together; a single string is a one-part key', () => {
    const key = (k: string) => valid(parse(policy(`key: ${k}\nhourly: 1`))).routes[0]!.limits!.key;
    expect(key('ip')).toEqual([{ type: 'ip' }]);
    expect(key('header:X-API-Key')).toEqual(key('[header:x-api-key]'));
    expect(key('path:3')).toEqual([{ type: 'path', segment: 3 }]);
    expect(key('query:user_id')).toEqual([{ type: 'query', name: 'user_id' }]);
    expect(key('[query:user, path:3, header:X-A, ip]')).toEqual([
      { type: 'query', name: 'user' },
      { type: 'path', segment: 3 },
      { type: 'header', name: 'x-a' },
      { type: 'ip' },
    ]);
  });

  it('takes any plan value and allowlist key as data: digits, "__proto__", spaces', () => {
    const l = valid(
      parse(
        policy(`
key: header:X-API-Key
hourly: 1
plans:
  by: key
  values:
    12345: { hourly: 2 }
    __proto__: { hourly: 3 }
    "with space": { hourly: 4 }
allowlist:
  keys: [67890, k-health]
`),
      ),
    ).routes[0]!.limits!;
    expect(l.plans!.values.map((v) => v.value)).toEqual(['12345', '__proto__', 'with space']);
    expect(l.allowlist!.keys).toEqual(['67890', 'k-health']);
    expect(Object.getPrototypeOf(l.plans!.values)).toBe(Array.prototype);
  });

  it('refuses each mistake with its own message at its position', () => {
    expect(errors(policy('key: []\nhourly: 1'))).toEqual([
      'p.yaml:9:12: routes[0].limits.key: a key needs at least one part; leave key out to count by ip',
    ]);
    expect(errors(policy('key: [ip, ip, ip, ip, ip, ip, ip, ip, ip]\nhourly: 1'))).toEqual([
      'p.yaml:9:12: routes[0].limits.key: a key has at most 8 parts, got 9',
    ]);
    expect(errors(policy('key: [path:65, "query:a&b", "header:", 7]\nhourly: 1'))).toEqual([
      'p.yaml:9:13: routes[0].limits.key[0]: invalid path segment "65" in key "path:65": segments count from 1 (/v1/users/42: path:3 is 42), up to 64',
      'p.yaml:9:22: routes[0].limits.key[1]: invalid query parameter name "a&b" in key "query:a&b"; use letters, digits, _ . ~ -',
      'p.yaml:9:35: routes[0].limits.key[2]: invalid header name "" in key "header:"',
      'p.yaml:9:46: routes[0].limits.key[3]: expected ip, header:<Name>, path:<N> or query:<name> (e.g. header:X-API-Key, path:3, query:user), got 7',
    ]);
    expect(
      errors(policy('key: path:3\nhourly: 1\nplans: { by: key, values: { a: { hourly: 2 } } }')),
    ).toEqual([]);
    expect(errors(policy('hourly: 1\nplans: { by: key, values: { a: { hourly: 2 } } }'))).toEqual([
      'p.yaml:10:20: routes[0].limits.plans.by: by: key cannot choose a plan by the client ip; key the route by a header, path or query',
    ]);
    expect(errors(policy('hourly: 1\nplans: { by: header:X-Plan, values: {} }'))).toEqual([
      'p.yaml:10:43: routes[0].limits.plans.values: needs at least one plan',
    ]);
    expect(
      errors(policy('hourly: 1\nplans: { by: header:X-Plan, values: { pro: 5, "": { hourly: 1 } } }')),
    ).toEqual([
      'p.yaml:10:50: routes[0].limits.plans.values.pro: expected a map, got 5',
      'p.yaml:10:57: routes[0].limits.plans.values.: a plan value cannot be empty',
    ]);
    expect(errors(policy('hourly: 1\nplans: { values: { pro: { hourly: 2 } } }'))).toEqual([
      'p.yaml:10:7: routes[0].limits.plans: missing required key "by"',
    ]);
  });

  it("checks the route's cost against every plan's windows", () => {
    expect(
      errors(policy('hourly: 10\ncost: 5\nplans: { by: header:X-Plan, values: { tiny: { hourly: 4 } } }')),
    ).toEqual([
      "p.yaml:10:13: routes[0].limits.cost: cost 5 is more than hourly's limit of 4 (plan tiny); a request that costs more than a window's limit could never be admitted",
    ]);
    expect(
      errors(policy('hourly: 10\ncost: 5\nplans: { by: header:X-Plan, values: { big: { hourly: 40 } } }')),
    ).toEqual([]);
  });

  it('bounds the number of plans', () => {
    const values = Array.from({ length: 1_001 }, (_, i) => `p${i}: { hourly: 2 }`).join(', ');
    expect(errors(policy(`hourly: 1\nplans: { by: header:X-Plan, values: { ${values} } }`))).toEqual([
      'p.yaml:10:43: routes[0].limits.plans.values: at most 1000 plans are allowed',
    ]);
  });
});

describe('limiter scopes', () => {
  const scopes = (limits: string): string[] => {
    const r = valid(parse(policy(limits))).routes[0]!;
    const l = r.limits!;
    return [limiterScope(r, l), ...(l.plans?.values ?? []).map((p) => limiterScope(r, l, p))];
  };

  it('gives every plan its own scope, even with the same windows, and never writes the value out', () => {
    const s = scopes(
      'key: header:X-API-Key\nhourly: 5\nplans: { by: key, values: { k-one: { hourly: 5 }, k-two: { hourly: 5 } } }',
    );
    expect(new Set(s).size).toBe(3);
    for (const scope of s) expect(scope).toMatch(/^api:[0-9a-f]{12}$/);
  });

  it('keeps the counters of what a reload leaves unchanged', () => {
    const before = scopes(
      'key: header:X-API-Key\nhourly: 5\nplans: { by: header:X-Plan, values: { pro: { hourly: 50 } } }',
    );
    // Another plan added, an allowlist, shadow mode: the default and pro keep their scopes.
    const after = scopes(
      'key: header:X-API-Key\nhourly: 5\nshadow: true\nallowlist: { keys: [k] }\nplans: { by: header:X-Plan, values: { pro: { hourly: 50 }, team: { hourly: 500 } } }',
    );
    expect(after.slice(0, 2)).toEqual(before);
    // pro's windows change: only pro starts afresh.
    const changed = scopes(
      'key: header:X-API-Key\nhourly: 5\nplans: { by: header:X-Plan, values: { pro: { hourly: 60 } } }',
    );
    expect(changed[0]).toBe(before[0]);
    expect(changed[1]).not.toBe(before[1]);
    // Another key counts other identities: everything starts afresh.
    const rekeyed = scopes(
      'key: [header:X-API-Key, ip]\nhourly: 5\nplans: { by: header:X-Plan, values: { pro: { hourly: 50 } } }',
    );
    expect(rekeyed[0]).not.toBe(before[0]);
    expect(rekeyed[1]).not.toBe(before[1]);
  });
});

describe('redaction', () => {
  it('hides allowlist keys and key-chosen plan values, and keeps header-chosen plan names', () => {
    const byKey = valid(
      parse(
        policy(
          'key: header:X-API-Key\nhourly: 1\nplans: { by: key, values: { k-secret: { hourly: 2 } } }\nallowlist: { ips: [10.0.0.1], keys: [k-health] }',
        ),
      ),
    );
    const shown = JSON.stringify(redactPolicy(byKey));
    expect(shown).not.toContain('k-secret');
    expect(shown).not.toContain('k-health');
    expect(redactPolicy(byKey).routes[0]!.limits).toMatchObject({
      plans: { values: [{ value: '***', windows: [{ limit: 2 }] }] },
      allowlist: { ips: [{ cidr: '10.0.0.1/32' }], keys: ['***'] },
    });
    const byHeader = valid(
      parse(policy('hourly: 1\nplans: { by: header:X-Plan, values: { pro: { hourly: 2 } } }')),
    );
    expect(redactPolicy(byHeader).routes[0]!.limits!.plans!.values[0]!.value).toBe('pro');
  });
});
