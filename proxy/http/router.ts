// The route table, compiled once per policy: which route a request takes. Shared by the data plane
// and `floodgate explain`, so both always agree.
//
// Rules: a route matches by exact path, or by prefix for a pattern ending in '/*', and by method when
// it lists methods. The first matching route in declaration order wins.
// - Request paths arrive canonical (http/normalize-path.ts), which drops a trailing slash, because
//   upstreams route /status/ and /status alike. So '/status/*' matches '/status' and everything under
//   it, and an exact '/a/' in a policy is the route '/a'.
// - A route that allows GET also takes HEAD: Node and Express answer HEAD with the GET handler, so a
//   HEAD must be counted against the same limits.
// - The router does no normalization of its own beyond that, so it cannot be fooled by spellings the
//   normalizer has not seen.
//
// Lookup cost does not grow with the number of routes: one Map lookup for the exact path plus one per
// '/' in the path that could end a configured prefix. Each bucket keeps its routes in declaration order,
// so the winner is the candidate with the lowest index.

export interface RouteMatchSpec {
  /** Exact path, or for a prefix route the pattern without its '*' (ending in '/'). */
  readonly path: string;
  readonly prefix: boolean;
  /** Uppercase methods; null matches every method. */
  readonly methods: readonly string[] | null;
}

export interface RouteTable<R> {
  /** The first route, in declaration order, matching `method` and the canonical `path`. */
  match(method: string, path: string): R | undefined;
}

interface Entry<R> {
  readonly index: number;
  readonly route: R;
  readonly methods: ReadonlySet<string> | null;
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

  const add = (table: Map<string, Entry<R>[]>, path: string, entry: Entry<R>): void => {
    const bucket = table.get(path);
    if (bucket) bucket.push(entry);
    else table.set(path, [entry]);
  };
  routes.forEach((route, index) => {
    const { path, prefix, methods } = route.match;
    const allowed = methods === null ? null : new Set(methods);
    if (allowed?.has('GET')) allowed.add('HEAD');
    const entry: Entry<R> = { index, route, methods: allowed };
    if (prefix) {
      add(prefixes, path, entry);
      prefixEnds.add(path.length);
    }
    // An exact '/a/' is '/a'; a prefix '/status/*' also takes '/status' (and '/status/', which
    // arrives as '/status').
    add(exact, withoutTrailingSlash(path), entry);
  });

  return {
    match(method, path) {
      let best = firstFor(exact.get(path), method, Number.POSITIVE_INFINITY);
      if (prefixEnds.size > 0) {
        for (let i = 0; i < path.length; i++) {
          if (path.charCodeAt(i) !== SLASH || !prefixEnds.has(i + 1)) continue;
          const bucket = prefixes.get(i + 1 === path.length ? path : path.slice(0, i + 1));
          const found = firstFor(bucket, method, best?.index ?? Number.POSITIVE_INFINITY);
          if (found) best = found;
        }
      }
      return best?.route;
    },
  };
}

/** The first entry allowing `method` that comes before `before` (entries are in declaration order). */
function firstFor<R>(
  bucket: readonly Entry<R>[] | undefined,
  method: string,
  before: number,
): Entry<R> | undefined {
  if (!bucket) return undefined;
  for (const e of bucket) {
    if (e.index >= before) return undefined;
    if (e.methods === null || e.methods.has(method)) return e;
  }
  return undefined;
}
