// The client's request headers as the upstream will receive them, checked in one pass. A request
// whose headers the proxy cannot forward without ambiguity is refused here, as the client's fault,
// before it costs quota or reaches the HTTP client (which would refuse it too, and the breaker would
// take that for an upstream failure):
// - a second Host, Content-Length, Content-Type or Authorization: upstreams disagree on which copy
//   wins, and undici refuses to send two Hosts;
// - a second copy of a header a route's limits read (a key part, the plan header, the cost): counted
//   under "a, b" while the upstream reads "a", a key would be a fresh quota, a plan one the upstream
//   never sees, and two costs leave no one cost to count;
// - before routing, a second copy of a header some route's conditions compare (duplicateHeader):
//   which route a request takes must not depend on which copy is read;
// - more than `maxHeaders` headers: a Node upstream keeps only the first ~1,000 lines, so padding
//   would push out the headers the proxy adds (X-Forwarded-For, X-Request-Id).
// Dropped on the way: hop-by-hop headers and those the Connection header names (never Host or
// Content-Length, which would change the request's target or framing), headers the proxy sets
// itself, names with an underscore (CGI, WSGI and Rack read X_API_KEY as X-API-Key; nginx drops
// them too), and the admin session cookie, which belongs to the admin listener alone.
import type { IncomingMessage } from 'node:http';
import { stripAdminCookie } from './admin-auth.js';

export interface HeaderRules {
  /** Most header lines a request may carry (431 beyond). */
  readonly maxHeaders: number;
  /** Forward names with an underscore (off by default). */
  readonly underscores: boolean;
}

export type CheckedHeaders =
  | { readonly ok: true; readonly headers: string[] }
  | { readonly ok: false; readonly code: 'bad_request' | 'headers_too_large'; readonly detail: string };

export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Node answers 100-continue itself; undici refuses to send the header on.
  'expect',
]);

/** What the proxy writes itself (server.ts): a client's copy never reaches the upstream. */
const OWN = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-real-ip',
  'forwarded',
  'x-request-id',
]);

/**
 * Lower-cased names of the headers a request may carry once, each with its bit in a per-request mask
 * (no allocation per request). Built per route at configuration time (singletonHeaders).
 */
export type SingletonHeaders = ReadonlyMap<string, number>;

/** Singletons on every route. */
const ALWAYS = ['host', 'content-length', 'content-type', 'authorization'];
/** Bits of a 32-bit mask that stay positive. */
const MAX_SINGLETONS = 31;

/** Every route's singletons plus `extra` (lower-cased: the headers its limits read). */
export function singletonHeaders(extra: readonly string[]): SingletonHeaders {
  const map = new Map<string, number>();
  for (const name of [...ALWAYS, ...extra]) {
    if (map.has(name)) continue;
    if (map.size === MAX_SINGLETONS) throw new RangeError(`more than ${MAX_SINGLETONS} singleton headers`);
    map.set(name, 1 << map.size);
  }
  return map;
}

/** The singletons of a route whose limits read no header. */
export const BASE_SINGLETONS: SingletonHeaders = singletonHeaders([]);

/** Headers a Connection token may not remove: they carry the request's target and framing. */
const PINNED = new Set(['host', 'content-length']);

/** Tokens listed in a Connection header are hop-by-hop for this message too. */
export function connectionTokens(value: string | string[] | undefined): Set<string> | null {
  // The usual values name no header: skip the split (every keep-alive upstream response has one).
  if (!value || value === 'keep-alive' || value === 'close') return null;
  const tokens = (Array.isArray(value) ? value.join(',') : value).toLowerCase().split(',');
  const set = new Set<string>();
  for (const t of tokens) {
    const name = t.trim();
    if (name && name !== 'close' && name !== 'keep-alive' && !PINNED.has(name)) set.add(name);
  }
  return set.size > 0 ? set : null;
}

/**
 * The first header of `names` (lower-case) that `req` carries more than once, as the client spelled
 * it, or null. Run before routing when routes compare headers: a duplicate is the client's fault.
 */
export function duplicateHeader(
  req: IncomingMessage,
  names: ReadonlySet<string>,
): (CheckedHeaders & { ok: false }) | null {
  const raw = req.rawHeaders;
  let seen: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!names.has(name)) continue;
    seen ??= new Set();
    if (seen.has(name)) return duplicate(raw[i]!);
    seen.add(name);
  }
  return null;
}

/**
 * The headers to send upstream as a flat [name, value, …] list (cheaper for undici than an object),
 * or why the request must be refused. `singletons` are the route's (singletonHeaders); `skipHost`
 * drops the client's Host (an absolute-form target supplies it).
 */
export function checkRequestHeaders(
  req: IncomingMessage,
  singletons: SingletonHeaders,
  skipHost: boolean,
  rules: HeaderRules,
): CheckedHeaders {
  const raw = req.rawHeaders;
  if (raw.length > rules.maxHeaders * 2) {
    return { ok: false, code: 'headers_too_large', detail: `more than ${rules.maxHeaders} headers` };
  }
  const extra = connectionTokens(req.headers.connection);
  let seen = 0;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const bit = singletons.get(name);
    if (bit !== undefined) {
      if ((seen & bit) !== 0) return duplicate(raw[i]!);
      seen |= bit;
    }
    if (HOP_BY_HOP.has(name) || OWN.has(name) || extra?.has(name)) continue;
    if (!rules.underscores && name.includes('_')) continue;
    if (skipHost && name === 'host') continue;
    if (name === 'cookie') {
      const kept = stripAdminCookie(raw[i + 1]!);
      if (kept !== null) out.push(raw[i]!, kept);
      continue;
    }
    out.push(raw[i]!, raw[i + 1]!);
  }
  return { ok: true, headers: out };
}

function duplicate(name: string): CheckedHeaders & { ok: false } {
  return { ok: false, code: 'bad_request', detail: `more than one ${name} header` };
}
