// The route table, compiled once per policy: which route a request takes. Shared by the data plane
// and `floodgate explain`, so both always agree.
//
// Rules (DESIGN §2): a route matches by exact path, or by prefix for a pattern ending in '/*', and by
// method when it lists methods. The first matching route in declaration order wins.
// - '/status/*' matches '/status/' and everything under it, but not '/status' (as a directory would);
//   add an exact route for '/status' when it is wanted.
// - Methods are compared as given; there is no implicit HEAD for GET.
// - `path` must already be canonical (http/normalize-path.ts: no query, no dot or empty segments,
//   lower-cased), which is also the form the schema stores route paths in. The router does no
//   normalization of its own, so it cannot be fooled by spellings the normalizer has not seen.
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

export function compileRoutes<R extends { readonly match: RouteMatchSpec }>(
  routes: readonly R[],
): RouteTable<R> {
  const exact = new Map<string, Entry<R>[]>();
  const prefixes = new Map<string, Entry<R>[]>();
  // Lengths of configured prefixes: a '/' in the request path only costs a lookup when one ends there.
  const prefixEnds = new Set<number>();

  routes.forEach((route, index) => {
    const { path, prefix, methods } = route.match;
    const entry: Entry<R> = { index, route, methods: methods === null ? null : new Set(methods) };
    const table = prefix ? prefixes : exact;
    const bucket = table.get(path);
    if (bucket) bucket.push(entry);
    else table.set(path, [entry]);
    if (prefix) prefixEnds.add(path.length);
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
