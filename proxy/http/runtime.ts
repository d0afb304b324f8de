// A policy compiled for the hot path: everything a request needs is looked up or built here
// once per (re)load, so serving a request is lookups and one store round trip.
import type { Breaker } from '../../core/breaker/circuit-breaker.js';
import type { RateLimiter } from '../ratelimit/limiter.js';
import type { RejectionAnswer } from '../ratelimit/rejection-template.js';
import type { Decision, WindowSpec } from '../ratelimit/store.js';
import type { ClientIpResolver } from './client-ip.js';
import type { ForwardTarget } from './forward.js';
import type { KeyOf, KeySource } from './limit-key.js';
import type { RequestCost } from './request-cost.js';
import type { SingletonHeaders } from './request-headers.js';
import type { RequestHeaders } from './router.js';

export interface UpstreamRuntime {
  readonly name: string;
  readonly url: string;
  readonly target: ForwardTarget;
  readonly breaker: Breaker;
}

/** One plan of a route: its own windows, counted by a limiter of its own. */
export interface PlanRuntime {
  /** The plan value as written in the policy, or null for the default windows. Never logged. */
  readonly value: string | null;
  readonly limiter: RateLimiter;
  readonly windows: readonly WindowSpec[];
  /** The rate limit headers answers carry (the route's client_headers, this plan's windows); null: none. */
  readonly headersOf: ((decision: Decision) => Record<string, string>) | null;
}

export interface RouteLimits {
  /** The identity a request counts under, or why its key cannot be read (400). */
  readonly keyOf: KeyOf;
  /** Lower-cased headers the key and the plan read: a request may carry each once (request-headers.ts). */
  readonly headers: readonly string[];
  /** The default plan: every request when the route has no plans, and those whose plan is not listed. */
  readonly plan: PlanRuntime;
  /**
   * The plan of a request with identity `id`; null when there is only the default. `trusted`: the peer
   * is a trusted proxy, the only one whose plan header is believed.
   */
  readonly planOf: ((req: KeySource, id: string, trusted: boolean) => PlanRuntime) | null;
  /** Whether a client address is exempt (the top-level and the route's allowlist); null when none is. */
  readonly allowIp: ((ip: string) => boolean) | null;
  /** Identities exempt by the route's allowlist keys; null when it lists none. */
  readonly allowIds: ReadonlySet<string> | null;
  readonly shadow: boolean;
  /** What a request counts in the windows (limits.cost), whatever its plan. */
  readonly cost: RequestCost;
  /** The answer to a request over the limits (the route's rejection), compiled. */
  readonly rejection: RejectionAnswer;
  /** What /admin/limits reads: one value per key part, and the plan a header would name (or null). */
  lookup(
    values: readonly string[],
    plan: string | null,
  ): { readonly id: string; readonly plan: PlanRuntime } | { readonly error: string };
}

export interface RouteRuntime {
  readonly name: string;
  readonly duration: { observe(seconds: number): void };
  readonly upstream: UpstreamRuntime;
  readonly maxBody: number;
  readonly limits: RouteLimits | null;
  /** Headers a request of this route may carry once: the usual ones and those its limits read. */
  readonly singletons: SingletonHeaders;
}

export interface Runtime {
  readonly version: number;
  readonly loadedAt: Date;
  /** The route a request takes (router.ts): `host` is the authority the proxy forwards, '' for none. */
  readonly match: (
    method: string,
    path: string,
    host: string,
    headers: RequestHeaders,
  ) => RouteRuntime | undefined;
  /** Headers some route's conditions compare, refused when repeated (before routing); null for none. */
  readonly conditionHeaders: ReadonlySet<string> | null;
  readonly routes: ReadonlyMap<string, RouteRuntime>;
  readonly upstreams: ReadonlyMap<string, UpstreamRuntime>;
  readonly clientIp: ClientIpResolver;
  /** IPv6 clients are counted by this many leading bits of their address (identity.ts). */
  readonly ipv6Prefix: number;
  readonly storeDenies: boolean;
}
