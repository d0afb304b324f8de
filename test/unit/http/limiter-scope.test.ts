// A route's counters survive a reload that changes only how it answers (its client headers and
// rejection), and start afresh when what it counts changes.
import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../proxy/config/load.js';
import type { Route } from '../../../proxy/config/schema.js';
import { limiterScope } from '../../../proxy/http/compile-runtime.js';

function route(limits: string): Route {
  const r = parsePolicy(
    `upstreams: { b: { url: "http://x:1" } }\nroutes:\n  - { name: api, upstream: b, match: { path: /x }, limits: ${limits} }\n`,
    'p.yaml',
    {},
  );
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.policy.routes[0]!;
}

const scope = (limits: string) => {
  const r = route(limits);
  return limiterScope(r, r.limits!);
};

describe('limiterScope', () => {
  it('ignores client_headers and rejection', () => {
    const plain = scope('{ hourly: 10 }');
    expect(scope('{ hourly: 10, client_headers: none }')).toBe(plain);
    expect(
      scope('{ hourly: 10, rejection: { status: 403, body: { e: "{{limit}}" }, headers: { X-A: b } } }'),
    ).toBe(plain);
  });

  it('changes with the windows', () => {
    expect(scope('{ hourly: 11 }')).not.toBe(scope('{ hourly: 10 }'));
  });
});
