// Compiles a route's limits for the hot path: its key, its plans (each a limiter of its own), and the
// allowlists that exempt a request. Everything that can be decided from the policy is decided here, so a
// request with one plan and a single-part key costs what it did before plans existed: one key lookup and
// three null checks.
import { keyPartText, type Policy, type RouteLimits as PolicyLimits, type Route } from '../config/schema.js';
import { sectionHash } from '../config/section-hash.js';
import { limitHeaderWriter, rateLimitPolicy } from '../ratelimit/headers.js';
import { RateLimiter } from '../ratelimit/limiter.js';
import { compileRejection } from '../ratelimit/rejection-template.js';
import type { RateLimitStore, WindowSpec } from '../ratelimit/store.js';
import { compileAddressList } from './client-ip.js';
import { compileKey, identityOfValues, singleIdentity } from './limit-key.js';
import { requestCost } from './request-cost.js';
import type { PlanRuntime, RouteLimits } from './runtime.js';

/**
 * The scope of one plan's limiter keys (the default plan's when `plan` is null). It carries a hash of
 * what the counters mean (the key, the algorithm, the plan's windows and its value): a plan that a
 * reload leaves unchanged keeps its counters, a changed one starts afresh instead of misreading state
 * kept for other windows, and no two plans ever share a counter. The plan value is hashed, never
 * written out: it may be an API key.
 */
export function limiterScope(
  route: Route,
  limits: PolicyLimits,
  plan: { readonly value: string; readonly windows: readonly WindowSpec[] } | null = null,
): string {
  const counted = {
    key: limits.key,
    algorithm: limits.algorithm,
    windows: plan?.windows ?? limits.windows,
    plan: plan?.value ?? null,
  };
  return `${route.name}:${sectionHash(counted).slice(0, 12)}`;
}

export function compileLimits(
  route: Route,
  limits: PolicyLimits,
  policy: Policy,
  store: RateLimitStore,
): RouteLimits {
  const planRuntime = (plan: { value: string; windows: readonly WindowSpec[] } | null): PlanRuntime => {
    const windows = plan?.windows ?? limits.windows;
    return {
      value: plan?.value ?? null,
      limiter: new RateLimiter({
        store,
        windows,
        algorithm: limits.algorithm,
        scope: limiterScope(route, limits, plan),
      }),
      windows,
      // The RateLimit-Policy header of the plan's windows is built here, once.
      headersOf: limitHeaderWriter(rateLimitPolicy(windows), limits.clientHeaders),
    };
  };
  const fallback = planRuntime(null);
  const single = limits.key.length === 1 ? limits.key[0]! : null;

  // Plans by the value that chooses them: a header's value as sent, or the key's identity (by: key).
  const byValue = new Map<string, PlanRuntime>();
  let planOf: RouteLimits['planOf'] = null;
  const plans = limits.plans;
  if (plans !== null) {
    const byKey = plans.by.type === 'key';
    const chosen = new Map<string, PlanRuntime>();
    for (const p of plans.values) {
      const rt = planRuntime(p);
      byValue.set(p.value, rt);
      // The schema allows by: key only for a single part that is not ip.
      chosen.set(byKey ? singleIdentity(single!, p.value) : p.value, rt);
    }
    if (plans.by.type === 'header') {
      const name = plans.by.name;
      // The header is set by an auth layer in front; a client's own copy would buy it any plan, so it
      // is believed only from a trusted proxy (as a cost header is).
      planOf = (req, _id, trusted) => {
        if (!trusted) return fallback;
        const v = req.headers[name];
        return (typeof v === 'string' && chosen.get(v)) || fallback;
      };
    } else {
      planOf = (_req, id) => chosen.get(id) ?? fallback;
    }
  }

  const allowKeys = limits.allowlist?.keys ?? [];
  const allowIds =
    allowKeys.length > 0 && single !== null && single.type !== 'ip'
      ? new Set(allowKeys.map((k) => singleIdentity(single, k)))
      : null;
  const ips = [...policy.allowlist.ips, ...(limits.allowlist?.ips ?? [])].map((c) => c.cidr);

  const planBy = plans?.by.type ?? null;
  const parts = limits.key.length;
  const cost = requestCost(limits.cost);
  return {
    keyOf: compileKey(limits.key),
    headers: [
      ...limits.key.flatMap((p) => (p.type === 'header' ? [p.name] : [])),
      ...(plans?.by.type === 'header' ? [plans.by.name] : []),
      ...(cost.header === null ? [] : [cost.header]),
    ],
    cost,
    rejection: compileRejection(limits.rejection, route.name),
    plan: fallback,
    planOf,
    allowIp: compileAddressList(ips),
    allowIds,
    shadow: limits.shadow,
    lookup(values, plan) {
      if (values.length !== parts) {
        return {
          error: `this route's key has ${parts} part${parts === 1 ? '' : 's'} (${limits.key.map(keyPartText).join(', ')}): give one key= per part, in that order`,
        };
      }
      const id = identityOfValues(limits.key, values, policy.clientIp.ipv6Prefix);
      if (plan !== null) {
        if (planBy !== 'header') {
          return {
            error:
              planBy === 'key'
                ? 'this route chooses its plan by its key; leave plan out'
                : 'this route has no plans; leave plan out',
          };
        }
        const rt = byValue.get(plan);
        return rt ? { id, plan: rt } : { error: 'Unknown plan' };
      }
      return {
        id,
        plan: planBy === 'key' && planOf !== null ? planOf({ headers: {} }, id, false) : fallback,
      };
    },
  };
}
