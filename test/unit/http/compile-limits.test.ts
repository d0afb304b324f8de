// A route's limits as the data plane runs them: which plan a request's identity picks, which
// identities and addresses are exempt, and what /admin/limits looks up, for values written in the
// policy any way a client could spell them.
import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../proxy/config/load.js';
import type { Policy } from '../../../proxy/config/schema.js';
import { compileLimits } from '../../../proxy/http/compile-limits.js';
import { normalizeTarget } from '../../../proxy/http/normalize-path.js';
import type { RouteLimits } from '../../../proxy/http/runtime.js';
import { MemoryRateLimitStore } from '../../../proxy/ratelimit/memory-store.js';

function compiled(limits: string, top = ''): { policy: Policy; limits: RouteLimits } {
  const r = parsePolicy(
    `${top}
upstreams: { api: { url: "http://127.0.0.1:3000" } }
routes:
  - name: r
    match: { path: /a/* }
    upstream: api
    limits: ${limits}
`,
    'p.yaml',
    {},
  );
  if (!r.ok) throw new Error(r.errors.join('\n'));
  const route = r.policy.routes[0]!;
  return {
    policy: r.policy,
    limits: compileLimits(route, route.limits!, r.policy, new MemoryRateLimitStore()),
  };
}

/** The plan value a request to `path` with `headers` is counted under (null: the default). */
function planFor(
  l: RouteLimits,
  path: string,
  headers: Record<string, string> = {},
  trusted = true,
): string | null {
  const id = l.keyOf({ headers }, 'ip:203.0.113.7', normalizeTarget(path)!);
  if (typeof id !== 'string') throw new Error(id.refused);
  return (l.planOf === null ? l.plan : l.planOf({ headers }, id, trusted)).value;
}

describe('compileLimits', () => {
  it('a path key finds its plans and allowlisted keys whatever the spelling, in the policy or the request', () => {
    const { limits: l } = compiled(
      '{ key: path:2, hourly: 1, plans: { by: key, values: { "%C3%A9t%C3%A9": { hourly: 5 }, Big: { hourly: 7 } } }, allowlist: { keys: ["100%25"] } }',
    );
    expect(planFor(l, '/a/%c3%a9T%C3%A9')).toBe('%C3%A9t%C3%A9');
    expect(planFor(l, '/a/BIG/orders')).toBe('Big');
    expect(planFor(l, '/a/%42ig')).toBe('Big');
    expect(planFor(l, '/a/small')).toBeNull();
    const id = (path: string) => l.keyOf({ headers: {} }, 'ip:x', normalizeTarget(path)!) as string;
    expect(l.allowIds?.has(id('/a/100%25'))).toBe(true);
    expect(l.allowIds?.has(id('/a/100'))).toBe(false);
  });

  it('plans by header match the value exactly; each plan has its own limiter and scope', () => {
    const { limits: l } = compiled(
      '{ key: header:X-API-Key, hourly: 1, plans: { by: header:X-Plan, values: { pro: { hourly: 5 } } } }',
    );
    expect(planFor(l, '/a/x', { 'x-plan': 'pro' })).toBe('pro');
    expect(planFor(l, '/a/x', { 'x-plan': 'Pro' })).toBeNull();
    expect(planFor(l, '/a/x', { 'x-plan': '' })).toBeNull();
    expect(planFor(l, '/a/x')).toBeNull();
    // A client's own plan header buys nothing: only a trusted proxy's is believed.
    expect(planFor(l, '/a/x', { 'x-plan': 'pro' }, false)).toBeNull();
    expect(l.headers).toEqual(['x-api-key', 'x-plan']);
    const pro = l.planOf!({ headers: { 'x-plan': 'pro' } }, 'h:k', true);
    expect(pro.limiter).not.toBe(l.plan.limiter);
    expect(pro.limiter.scope).not.toBe(l.plan.limiter.scope);
    // Each plan's headers describe its own windows, in the route's client_headers form.
    const decision = {
      allowed: true,
      windows: [{ name: 'hourly', limit: 5, remaining: 4, resetAt: 0, retryAfterMs: 0 }],
      now: 0,
    };
    expect(pro.headersOf!(decision as never)).toMatchObject({
      'ratelimit-policy': '"hourly";q=5;w=3600',
      'x-ratelimit-limit': '5',
    });
    const legacy = compiled(
      '{ hourly: 1, client_headers: none, plans: { by: header:X-Plan, values: { pro: { hourly: 5 } } } }',
    ).limits;
    expect(legacy.plan.headersOf).toBeNull();
    expect(legacy.planOf!({ headers: { 'x-plan': 'pro' } }, 'ip:x', true).headersOf).toBeNull();
  });

  it('a route with one plan and one part compiles to no plan lookup and no allowlist', () => {
    const { limits: l } = compiled('{ key: header:X-API-Key, hourly: 1 }');
    expect(l.planOf).toBeNull();
    expect(l.allowIp).toBeNull();
    expect(l.allowIds).toBeNull();
  });

  it('addresses: the top-level list and the route’s, IPv4 and IPv6, canonical client addresses', () => {
    const { limits: l } = compiled(
      '{ hourly: 1, allowlist: { ips: [192.0.2.10] } }',
      'allowlist: { ips: [10.0.0.0/8, "fd00::/8"] }',
    );
    for (const ip of ['10.1.2.3', '192.0.2.10', 'fd00::1', '::ffff:10.1.2.3'])
      expect([ip, l.allowIp!(ip)]).toEqual([ip, true]);
    for (const ip of ['11.0.0.1', '192.0.2.11', 'fe00::1', '::ffff:11.0.0.1', 'garbage'])
      expect([ip, l.allowIp!(ip)]).toEqual([ip, false]);
  });

  it('lookup: one value per part, plan= only for header-chosen plans', () => {
    const { limits: l } = compiled(
      '{ key: [header:X-API-Key, ip], hourly: 1, plans: { by: header:X-Plan, values: { pro: { hourly: 5 } } } }',
    );
    const counted = l.keyOf({ headers: { 'x-api-key': 'k1' } }, 'ip:203.0.113.7', normalizeTarget('/a/x')!);
    expect(l.lookup(['k1', '203.0.113.7'], 'pro')).toMatchObject({ id: counted, plan: { value: 'pro' } });
    expect(l.lookup(['k1', '203.0.113.7'], null)).toMatchObject({ id: counted, plan: { value: null } });
    expect(l.lookup(['k1', '203.0.113.7'], 'gold')).toEqual({ error: 'Unknown plan' });
    expect(l.lookup(['k1'], null)).toMatchObject({ error: expect.stringContaining('has 2 parts') });
  });
});
