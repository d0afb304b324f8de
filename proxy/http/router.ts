// The route table, compiled once per policy: which route a request takes. Shared by the data plane
// and `floodgate explain`, so both always agree.
//
// Rules: a route matches by exact path, or by prefix for a pattern ending in '/*', by method when it
// lists methods, by host when it lists hosts, and by header when it lists headers. The first route in
// declaration order whose conditions all hold wins.
// - Request paths arrive canonical (http/normalize-path.ts), which drops a trailing slash, because
//   upstreams route /status/ and /status alike. So '/status/*' matches '/status' and everything under
//   it, and an exact '/a/' in a policy is the route '/a'.
// - A route that allows GET also takes HEAD: Node and Express answer HEAD with the GET handler, so a
//   HEAD must be counted against the same limits.
// - The router does no normalization of its own beyond that, so it cannot be fooled by spellings the
//   normalizer has not seen.
//
// - Hosts compare in one spelling (http/host.ts): case, port and a trailing dot do not count. Header
//   values compare exactly, as node:http hands them over (spaces and tabs around them trimmed); a
//   request carrying a condition's header twice is refused before routing (request-headers.ts).
//
// Lookup cost does not grow with the number of routes: one Map lookup for the exact path plus one per
// '/' in the path that could end a configured prefix. Each bucket keeps its routes in declaration order,
// so the winner is the candidate with the lowest index. Host and header conditions are compiled into
// one test per route, run only for the candidates the path and method leave.
import { canonicalHost, compileHostCondition } from './host.js';

export interface HeaderConditionSpec {
  /** Lower-cased. */
  readonly name: string;
  /** Exact values, any of which matches. */
  readonly values: readonly string[];
}

export interface RouteMatchSpec {
  /** Exact path, or for a prefix route the pattern without its '*' (ending in '/'). */
  readonly path: string;
  readonly prefix: boolean;
  /** Uppercase methods; null matches every method. */
  readonly methods: readonly string[] | null;
  /** Canonical host patterns (host.ts), any of which matches; null or absent: every host. */
  readonly host?: readonly string[] | null;
  /** Headers that must all be present with one of their values; null or absent: no condition. */
  readonly headers?: readonly HeaderConditionSpec[] | null;
}

/** What routing reads of a request. */
export interface RouteRequest {
  readonly method: string;
  /** The canonical path (normalize-path.ts). */
  readonly path: string;
  /** The authority the proxy forwards: an absolute-form target's, else the Host header; '' for none. */
  readonly host: string;
  readonly headers: RequestHeaders;
}

/** Request headers as node:http gives them: lower-cased names. */
export type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

const NO_HEADERS: RequestHeaders = {};

export interface RouteTable<R> {
  /**
   * The first route, in declaration order, whose path, method, host and headers all match: `path`
   * canonical (normalize-path.ts), `host` the authority the proxy forwards ('' for none). Plain
   * arguments rather than an object, so the hot path allocates nothing for it.
   */
  match(method: string, path: string, host?: string, headers?: RequestHeaders): R | undefined;
  /**
   * The lower-cased headers some route's conditions read ('host' among them when a route matches by
   * host): a request carrying one of them twice cannot be routed unambiguously. Empty without conditions.
   */
  readonly conditionHeaders: ReadonlySet<string>;
}

/** A route's host and header conditions as one test of the request, given its canonical host. */
type ConditionTest = (headers: RequestHeaders, host: string) => boolean;

interface Entry<R> {
  readonly index: number;
  readonly route: R;
  readonly methods: ReadonlySet<string> | null;
  readonly conditions: ConditionTest | null;
}

const SLASH = 0x2f;

function withoutTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

export function compileRoutes<R extends { readonly match: RouteMatchSpec }>(
  routes: readonly R[],
): RouteTable<R> {
  const exact = new Map<string, Entry<R>[]>();
  const prefixes = new Map<string, Entry<R>[]>();
  // Lengths of configured prefixes: a '/' in the request path only costs a lookup when one ends there.
  const prefixEnds = new Set<number>();
  const conditionHeaders = new Set<string>();
  let byHost = false;

  const add = (table: Map<string, Entry<R>[]>, path: string, entry: Entry<R>): void => {
    const bucket = table.get(path);
    if (bucket) bucket.push(entry);
    else table.set(path, [entry]);
  };
  routes.forEach((route, index) => {
    const { path, prefix, methods } = route.match;
    const allowed = methods === null ? null : new Set(methods);
    if (allowed?.has('GET')) allowed.add('HEAD');
    const conditions = compileConditions(route.match);
    if (route.match.host) {
      byHost = true;
      conditionHeaders.add('host');
    }
    for (const h of route.match.headers ?? []) conditionHeaders.add(h.name);
    const entry: Entry<R> = { index, route, methods: allowed, conditions };
    if (prefix) {
      add(prefixes, path, entry);
      prefixEnds.add(path.length);
    }
    // An exact '/a/' is '/a'; a prefix '/status/*' also takes '/status' (and '/status/', which
    // arrives as '/status').
    add(exact, withoutTrailingSlash(path), entry);
  });

  return {
    conditionHeaders,
    match(method, path, authority = '', headers = NO_HEADERS) {
      // Worked out once per request, and only when some route compares it.
      const host = byHost ? canonicalHost(authority) : '';
      let best = firstFor(exact.get(path), method, headers, host, Number.POSITIVE_INFINITY);
      if (prefixEnds.size > 0) {
        for (let i = 0; i < path.length; i++) {
          if (path.charCodeAt(i) !== SLASH || !prefixEnds.has(i + 1)) continue;
          const bucket = prefixes.get(i + 1 === path.length ? path : path.slice(0, i + 1));
          const found = firstFor(bucket, method, headers, host, best?.index ?? Number.POSITIVE_INFINITY);
          if (found) best = found;
        }
      }
      return best?.route;
    },
  };
}

/** The first entry matching the request that comes before `before` (entries are in declaration order). */
function firstFor<R>(
  bucket: readonly Entry<R>[] | undefined,
  method: string,
  headers: RequestHeaders,
  host: string,
  before: number,
): Entry<R> | undefined {
  if (!bucket) return undefined;
  for (const e of bucket) {
    if (e.index >= before) return undefined;
    if (e.methods !== null && !e.methods.has(method)) continue;
    if (e.conditions === null || e.conditions(headers, host)) return e;
  }
  return undefined;
}

/** A route's host and header conditions compiled into one test; null when it has none. */
function compileConditions(spec: RouteMatchSpec): ConditionTest | null {
  const tests: ConditionTest[] = [];
  if (spec.host) {
    const hostMatches = compileHostCondition(spec.host);
    tests.push((_headers, host) => host !== '' && hostMatches(host));
  }
  for (const h of spec.headers ?? []) {
    const { name } = h;
    if (h.values.length === 1) {
      const value = h.values[0]!;
      tests.push((headers) => headers[name] === value);
    } else {
      const values = new Set(h.values);
      tests.push((headers) => {
        const v = headers[name];
        return typeof v === 'string' && values.has(v);
      });
    }
  }
  if (tests.length === 0) return null;
  if (tests.length === 1) return tests[0]!;
  return (headers, host) => {
    for (const t of tests) if (!t(headers, host)) return false;
    return true;
  };
}

/**
 * Why `spec` does not take `request` ('path', 'method', 'host' or the header's name), or null when
 * it does: what `floodgate explain` reports about the routes a request passed over.
 */
export function mismatch(spec: RouteMatchSpec, request: RouteRequest): string | null {
  const path = withoutTrailingSlash(spec.path);
  const pathOk = spec.prefix
    ? request.path === path || request.path.startsWith(spec.path)
    : request.path === path;
  if (!pathOk) return 'path';
  if (spec.methods !== null) {
    const m = request.method === 'HEAD' && spec.methods.includes('GET') ? 'GET' : request.method;
    if (!spec.methods.includes(m)) return 'method';
  }
  if (spec.host && !compileHostCondition(spec.host)(canonicalHost(request.host))) return 'host';
  for (const h of spec.headers ?? []) {
    const v = request.headers[h.name];
    if (typeof v !== 'string' || !h.values.includes(v)) return h.name;
  }
  return null;
}
