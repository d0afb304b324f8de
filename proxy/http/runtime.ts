// A policy compiled for the hot path: everything a request needs is looked up or built here
// once per (re)load, so serving a request is lookups and one store round trip.
import type { IncomingMessage } from 'node:http';
import type { Breaker } from '../../core/breaker/circuit-breaker.js';
import type { RateLimiter } from '../ratelimit/limiter.js';
import type { RejectionAnswer } from '../ratelimit/rejection-template.js';
import type { Decision } from '../ratelimit/store.js';
import type { ClientIpResolver } from './client-ip.js';
import type { ForwardTarget } from './forward.js';
import { headerIdentity } from './identity.js';
import type { RequestCost } from './request-cost.js';
import type { SingletonHeaders } from './request-headers.js';
import type { RequestHeaders } from './router.js';

export interface UpstreamRuntime {
  readonly name: string;
  readonly url: string;
  readonly target: ForwardTarget;
  readonly breaker: Breaker;
}

export interface RouteLimits {
  readonly limiter: RateLimiter;
  /** The identity to count under: the header's value, or the client's IP identity when it is absent. */
  readonly keyOf: (req: IncomingMessage, ipKey: string) => string;
  /** The key /admin/limits looks up for a raw IP or header value. */
  readonly adminKey: (id: string) => string;
  readonly shadow: boolean;
  readonly policyHeader: string;
  /** What a request counts in the windows (limits.cost). */
  readonly cost: RequestCost;
  /** The rate limit headers answers carry (the route's client_headers); null: none. */
  readonly headersOf: ((decision: Decision) => Record<string, string>) | null;
  /** The answer to a request over the limits (the route's rejection), compiled. */
  readonly rejection: RejectionAnswer;
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

/** The identity under which a route keyed by `header` (null: by IP) counts a request. */
export function keyExtractor(header: string | null): (req: IncomingMessage, ipKey: string) => string {
  if (header === null) return (_req, ipKey) => ipKey;
  return (req, ipKey) => {
    const value = req.headers[header];
    // A second copy of the header was refused before this (request-headers.ts), so this is a string.
    if (typeof value === 'string' && value !== '') return headerIdentity(value);
    return ipKey;
  };
}
