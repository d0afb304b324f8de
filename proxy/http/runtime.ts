// A policy compiled for the hot path: everything a request needs is looked up or built here
// once per (re)load, so serving a request is lookups and one store round trip.
import type { IncomingMessage } from 'node:http';
import type { CircuitBreaker } from '../breaker/circuit-breaker.js';
import type { RateLimiter } from '../ratelimit/limiter.js';
import type { ClientIpResolver } from './client-ip.js';
import type { ForwardTarget } from './forward.js';

export interface UpstreamRuntime {
  readonly name: string;
  readonly url: string;
  readonly target: ForwardTarget;
  readonly breaker: CircuitBreaker;
}

export interface RouteLimits {
  readonly limiter: RateLimiter;
  /** The identity to count under: a header value, or the client IP when it is absent. */
  readonly keyOf: (req: IncomingMessage, clientIp: string) => string;
  /** The key /admin/limits looks up for a raw IP or header value. */
  readonly adminKey: (id: string) => string;
  readonly shadow: boolean;
  readonly policyHeader: string;
}

export interface RouteRuntime {
  readonly name: string;
  readonly duration: { observe(seconds: number): void };
  readonly upstream: UpstreamRuntime;
  readonly maxBody: number;
  readonly limits: RouteLimits | null;
}

export interface Runtime {
  readonly version: number;
  readonly loadedAt: Date;
  readonly match: (method: string, path: string) => RouteRuntime | undefined;
  readonly routes: ReadonlyMap<string, RouteRuntime>;
  readonly upstreams: ReadonlyMap<string, UpstreamRuntime>;
  readonly clientIp: ClientIpResolver;
  readonly storeDenies: boolean;
}

/** Keys are namespaced by kind so a header value can never collide with an IP. */
export function keyExtractor(header: string | null): (req: IncomingMessage, clientIp: string) => string {
  if (header === null) return (_req, ip) => 'ip:' + ip;
  return (req, ip) => {
    const value = req.headers[header];
    if (typeof value === 'string' && value !== '') return 'h:' + value;
    return 'ip:' + ip;
  };
}
