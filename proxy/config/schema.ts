// The one schema of the proxy policy (the README's "The policy file"). YAML keys go in (snake_case, strict: an unknown key is an
// error); a normalized shape comes out, ready for the proxy: durations in ms, sizes in bytes, limits as a
// list of windows, header names lowercased, methods uppercased, addresses split into host and port.
//
// Defaults (applied when a key is absent):
//   version 1 · listen 127.0.0.1:8080 · admin.listen 127.0.0.1:9090 · admin.token none
//   store: type memory, url redis://127.0.0.1:6379, prefix "floodgate:", timeout 50ms, on_error local,
//     cluster false, max_keys 100000 (identities the memory store holds: it and the on_error: local
//     fallback; see proxy/ratelimit/memory-store.ts for what a key costs), refusal_cache false
//   client_ip.trusted_proxies [] (X-Forwarded-For is never believed)
//   upstream timeouts: connect 2s, response 60s, idle 30s
//   upstream breaker: failure_threshold 5, success_threshold 2, timeout 60s, half_open_max_calls 3,
//     failure_statuses [502, 503, 504], failure_rate off (when given: window 60s, minimum_calls 20)
//   route: methods any, host any, headers any, max_body unlimited (bodies stream, so the proxy holds none
//     in memory; a cap is the service's choice, not a resource the proxy needs), limits none (forwarded
//     unlimited)
//   limits: key ip, algorithm sliding-log, shadow false, client_headers both, rejection status 429 with
//     the default body and no extra headers, cost 1 (header form: default 1)
import { isIP } from 'node:net';
import { z } from 'zod';
import {
  DURATION_UNITS_MS,
  describeValue,
  fail,
  ok,
  type Parsed,
  parseDuration,
  parseSize,
  parseTimeout,
  SIZE_UNITS,
} from '../../core/units.js';
import { hostCovers, parseHostPattern } from '../http/host.js';
import { HOP_BY_HOP } from '../http/request-headers.js';
import { type JsonValue, splitPlaceholders } from '../ratelimit/rejection-template.js';
import type { WindowSpec } from '../ratelimit/store.js';

// ---------------------------------------------------------------------------------------------------------
// Addresses, keys and paths (values with units are core/units.ts's). Each parser returns the value or an
// error message, so the CLI, the schema and tests share one definition.

export interface ListenAddress {
  host: string;
  port: number;
}

/** 'host:port' or '[ipv6]:port'; port 0 asks the OS for a free one (tests). */
export function parseListen(input: unknown): Parsed<ListenAddress> {
  const hint = 'expected host:port (e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080)';
  if (typeof input !== 'string') return fail(`${hint}, got ${describeValue(input)}`);
  const bad = fail(`invalid listen address ${JSON.stringify(input)}; ${hint}`);
  const m = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(input);
  if (!m) return bad;
  const port = Number(m[3]);
  if (port > 65_535) return bad;
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? ok({ host: m[1], port }) : bad;
  const host = m[2]!;
  const hostname =
    /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
  // Digits-and-dots that are not an IPv4 address (999.1.1.1) are typos, not hostnames.
  if (/^[\d.]+$/.test(host) ? isIP(host) !== 4 : !hostname.test(host)) return bad;
  return ok({ host, port });
}

export interface Cidr {
  /** Normalized text, always with a prefix length: '127.0.0.1/32', '::1/128'. */
  cidr: string;
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** An IP or a CIDR block, IPv4 or IPv6 (the shape node:net BlockList.addSubnet takes). */
export function parseCidr(input: unknown): Parsed<Cidr> {
  const hint = 'expected an IP or a CIDR block (e.g. 127.0.0.1, 10.0.0.0/8, ::1, fd00::/8)';
  if (typeof input !== 'string') return fail(`${hint}, got ${describeValue(input)}`);
  const [address = '', bits, ...rest] = input.trim().split('/');
  const version = isIP(address);
  const max = version === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
  if (version === 0 || rest.length > 0 || !(prefix >= 0 && prefix <= max)) {
    return fail(`invalid CIDR or IP ${JSON.stringify(input)}; ${hint}`);
  }
  return ok({ cidr: `${address}/${prefix}`, address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' });
}

// RFC 9110 token: what header names and methods may contain.
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Route, upstream and window names end up in URLs, metric labels and RateLimit headers.
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const NAME_HINT = 'letters, digits, _ . - (at most 64, starting with a letter or digit)';

/** The most worker processes a policy may ask for. */
export const MAX_WORKERS = 64;

/** `workers`: a count of processes, or 'auto' (one per available core, resolved at start). */
export function parseWorkers(input: unknown): Parsed<number | 'auto'> {
  if (input === 'auto') return ok('auto');
  if (typeof input === 'number' && Number.isInteger(input) && input >= 1 && input <= MAX_WORKERS)
    return ok(input);
  return fail(
    `expected auto or a whole number of processes from 1 to ${MAX_WORKERS}, got ${describeValue(input)}`,
  );
}

/** One part of a rate-limit key: what of a request it reads. */
export type KeyPart =
  | { readonly type: 'ip' }
  | { readonly type: 'header'; readonly name: string }
  /** The Nth segment (1-based) of the normalized path: /v1/users/42 → path:3 is 42. */
  | { readonly type: 'path'; readonly segment: number }
  /** A query parameter, by its decoded name. */
  | { readonly type: 'query'; readonly name: string };

/** A route's key: the parts a request is counted by, together (one part: as before composite keys). */
export type LimitKey = readonly KeyPart[];

/** Parts one key may combine; each costs every request of its route a lookup. */
export const MAX_KEY_PARTS = 8;
/** The deepest path segment a key may read. */
export const MAX_PATH_SEGMENT = 64;

const KEY_HINT =
  'expected ip, header:<Name>, path:<N> or query:<name> (e.g. header:X-API-Key, path:3, query:user)';
// Query names are compared decoded; these are the names that read the same in every framework.
const QUERY_NAME_RE = /^[A-Za-z0-9_.~-]{1,128}$/;

/** 'ip' | 'header:<Name>' | 'path:<N>' | 'query:<name>' → one part of a key. */
export function parseKeyPart(input: unknown): Parsed<KeyPart> {
  if (typeof input !== 'string') return fail(`${KEY_HINT}, got ${describeValue(input)}`);
  if (input === 'ip') return ok({ type: 'ip' });
  const colon = input.indexOf(':');
  const kind = colon === -1 ? input : input.slice(0, colon);
  const arg = colon === -1 ? '' : input.slice(colon + 1).trim();
  switch (kind) {
    case 'header':
      if (!TOKEN_RE.test(arg))
        return fail(`invalid header name ${JSON.stringify(arg)} in key ${JSON.stringify(input)}`);
      return ok({ type: 'header', name: arg.toLowerCase() });
    case 'path': {
      const n = /^\d{1,3}$/.test(arg) ? Number(arg) : Number.NaN;
      if (!(n >= 1 && n <= MAX_PATH_SEGMENT)) {
        return fail(
          `invalid path segment ${JSON.stringify(arg)} in key ${JSON.stringify(input)}: segments count from 1 ` +
            `(/v1/users/42: path:3 is 42), up to ${MAX_PATH_SEGMENT}`,
        );
      }
      return ok({ type: 'path', segment: n });
    }
    case 'query':
      if (!QUERY_NAME_RE.test(arg)) {
        return fail(
          `invalid query parameter name ${JSON.stringify(arg)} in key ${JSON.stringify(input)}; use letters, digits, _ . ~ -`,
        );
      }
      return ok({ type: 'query', name: arg });
    default:
      return fail(`unknown key part ${JSON.stringify(input)}; ${KEY_HINT}`);
  }
}

/** A part as the policy spells it (header names lower-cased): 'ip', 'header:x-api-key', 'path:3'. */
export function keyPartText(part: KeyPart): string {
  switch (part.type) {
    case 'ip':
      return 'ip';
    case 'header':
      return `header:${part.name}`;
    case 'path':
      return `path:${part.segment}`;
    case 'query':
      return `query:${part.name}`;
  }
}

/** How a route picks its plan: by a header's value, or by the value of the route's own (single-part) key. */
export type PlanBy = { readonly type: 'key' } | { readonly type: 'header'; readonly name: string };

export function parsePlanBy(input: unknown): Parsed<PlanBy> {
  const hint = "expected key (the route's own key value) or header:<Name> (e.g. header:X-Plan)";
  if (input === 'key') return ok({ type: 'key' });
  const part = parseKeyPart(input);
  if (part.ok && part.value.type === 'header') return ok(part.value);
  if (!part.ok && typeof input === 'string' && input.startsWith('header:')) return part;
  return fail(`${hint}, got ${describeValue(input)}`);
}

export interface RouteMatch {
  /** The path as written: '/transcribe' or '/status/*'. */
  pattern: string;
  /** What is compared, lower-cased: the exact path, or for a prefix the pattern without its '*' ('/status/'). */
  path: string;
  prefix: boolean;
  /** Uppercased and deduplicated; null matches every method. */
  methods: string[] | null;
  /** Canonical host patterns (http/host.ts), any of which the request's host must match; null: any host. */
  host: string[] | null;
  /** Headers that must each be present with one of their values; null: no header condition. */
  headers: HeaderCondition[] | null;
}

export interface HeaderCondition {
  /** Lower-cased. */
  name: string;
  /** Exact, case-sensitive values, deduplicated: any one matches. */
  values: string[];
}

/**
 * '/exact' or '/prefix/*'. Request paths are matched without a trailing slash (http/normalize-path.ts),
 * so an exact '/a/' is the route '/a', and a prefix matches '/prefix' and everything under it.
 */
export function parseRoutePath(input: unknown): Parsed<Pick<RouteMatch, 'pattern' | 'path' | 'prefix'>> {
  if (typeof input !== 'string') return fail(`expected a path, got ${describeValue(input)}`);
  if (!input.startsWith('/')) return fail(`path must start with "/", got ${JSON.stringify(input)}`);
  const prefix = input.endsWith('/*');
  const path = prefix ? input.slice(0, -1) : input;
  if (path.includes('*')) {
    return fail(`invalid path ${JSON.stringify(input)}: "*" is allowed only as a trailing "/*" (a prefix)`);
  }
  if (/[?#\s]/.test(path) || [...path].some((c) => c < ' ' || c === '\u007f')) {
    return fail(`invalid path ${JSON.stringify(input)}: no query, fragment, spaces or control characters`);
  }
  // Request paths are normalized before matching (http/normalize-path.ts: no dot or empty segments,
  // lower-cased), so a route spelled otherwise could never match; its compared form is lower-cased too.
  if (path.split('/').some((s) => s === '.' || s === '..') || path.includes('//')) {
    return fail(`invalid path ${JSON.stringify(input)}: no ".", ".." or empty segments`);
  }
  return ok({ pattern: input, path: path.toLowerCase(), prefix });
}

// ---------------------------------------------------------------------------------------------------------
// Header conditions and the rejection's headers. A value goes into a header as written, so it may
// hold no control character (CR and LF would end the header and start another: header injection), and
// only printable ASCII: Node reads header bytes as Latin-1, so UTF-8 text would never compare equal.

/** Most hosts, header conditions and values per header one route may list. */
const MAX_HOSTS = 64;
const MAX_MATCH_HEADERS = 16;
const MAX_HEADER_VALUES = 64;
/** Longest header value a policy may write (a condition's, or a rejection header's). */
const MAX_HEADER_VALUE = 1024;

/** Why `value` cannot stand in a header, or null when it can. */
function headerValueProblem(value: string): string | null {
  if (value.length > MAX_HEADER_VALUE) return `is longer than ${MAX_HEADER_VALUE} characters`;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x09 || (c >= 0x20 && c < 0x7f)) continue;
    if (c < 0x20 || c === 0x7f) return 'holds a control character (CR, LF, NUL…), which no header may carry';
    return 'holds a character outside printable ASCII';
  }
  return null;
}

/** A header condition's value: what node:http hands over after trimming spaces and tabs. */
export function parseHeaderValue(input: unknown): Parsed<string> {
  if (typeof input !== 'string') {
    const quoteIt = typeof input === 'number' || typeof input === 'boolean' ? ` (quote it: "${input}")` : '';
    return fail(`expected a header value as text${quoteIt}, got ${describeValue(input)}`);
  }
  if (input === '') return fail('a header value to match must not be empty');
  const problem = headerValueProblem(input);
  if (problem) return fail(`header value ${describeValue(input)} ${problem}`);
  // node:http trims the spaces and tabs around a value, so one written with them could never match.
  if (/^[ \t]|[ \t]$/.test(input))
    return fail(
      `header value ${describeValue(input)} starts or ends with a space, which a request's value never does`,
    );
  return ok(input);
}

/** What kind of value this is, without its content: "a list", "a map", "text", "a number"… */
function kindOf(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return 'text';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return 'true or false';
  return 'a map';
}

// ---------------------------------------------------------------------------------------------------------
// Schema building blocks.

/** A scalar parsed by one of the functions above; an absent value reports as a missing key. */
function parsedBy<T>(parse: (input: unknown) => Parsed<T>) {
  return z.unknown().transform((input, ctx): T => {
    if (input === undefined) {
      ctx.issues.push({ code: 'invalid_type', expected: 'nonoptional', input });
      return z.NEVER;
    }
    const r = parse(input);
    if (!r.ok) {
      ctx.issues.push({ code: 'custom', message: r.error, input });
      return z.NEVER;
    }
    return r.value;
  });
}

/** A strict object whose unknown-key message lists what is allowed; the loader names each unknown key. */
function strict<S extends z.core.$ZodLooseShape>(shape: S) {
  const allowed = `allowed: ${Object.keys(shape).join(', ')}`;
  return z.strictObject(shape, { error: (iss) => (iss.code === 'unrecognized_keys' ? allowed : undefined) });
}

const duration = parsedBy(parseDuration);
const timeout = parsedBy(parseTimeout);
const size = parsedBy(parseSize);
const listen = parsedBy(parseListen);
const count = (min: number) => z.number().int().min(min);
const name = (what: string) =>
  z
    .string()
    .regex(NAME_RE, { error: (iss) => `invalid ${what} name ${describeValue(iss.input)}; use ${NAME_HINT}` });

const method = z
  .string()
  .regex(TOKEN_RE, { error: (iss) => `invalid method ${describeValue(iss.input)}` })
  .transform((m) => m.toUpperCase());

/**
 * One value or a list of them, each parsed by `parse`; deduplicated. An issue names the list item it is
 * about, or the value itself when it was written alone.
 */
function oneOrMany<T>(parse: (input: unknown) => Parsed<T>, what: string, max: number) {
  return z.unknown().transform((input, ctx): T[] => {
    const list = Array.isArray(input);
    const items: unknown[] = list ? input : [input];
    if (list && items.length === 0) {
      ctx.issues.push({ code: 'custom', message: `${what} must not be an empty list`, input });
      return z.NEVER;
    }
    if (items.length > max) {
      ctx.issues.push({ code: 'custom', message: `at most ${max} ${what} are allowed`, input });
      return z.NEVER;
    }
    const out: T[] = [];
    items.forEach((item, i) => {
      const r = parse(item);
      if (r.ok) out.push(r.value);
      else ctx.issues.push({ code: 'custom', message: r.error, input: item, path: list ? [i] : [] });
    });
    return out.length === items.length ? [...new Set(out)] : z.NEVER;
  });
}

/**
 * A map of header names to checked values: names are RFC 9110 tokens, compared lower-case (a name
 * written twice in two cases is an error). `forbidden` says why a name may not be used, or null.
 */
function headerMap<T>(
  parseValue: (input: unknown) => Parsed<T>,
  max: number,
  forbidden: (name: string) => string | null,
) {
  return z.unknown().transform((input, ctx): { name: string; value: T }[] => {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      ctx.issues.push({
        code: 'custom',
        message: `expected a map of header names to values, got ${describeValue(input)}`,
        input,
      });
      return z.NEVER;
    }
    const entries = Object.entries(input);
    if (entries.length > max) {
      ctx.issues.push({ code: 'custom', message: `at most ${max} headers are allowed`, input });
      return z.NEVER;
    }
    const out: { name: string; value: T }[] = [];
    const seen = new Map<string, string>();
    let failed = false;
    for (const [written, value] of entries) {
      const name = written.toLowerCase();
      // params.key: the problem is the key, so its position is the key's.
      const atKey = (message: string) => {
        failed = true;
        ctx.issues.push({ code: 'custom', message, input: written, path: [written], params: { key: true } });
      };
      if (!TOKEN_RE.test(written)) {
        atKey(`invalid header name ${describeValue(written)}; use letters, digits and !#$%&'*+-.^_\`|~`);
        continue;
      }
      const why = forbidden(name);
      if (why !== null) {
        atKey(`header ${written} ${why}`);
        continue;
      }
      const first = seen.get(name);
      if (first !== undefined) {
        atKey(`header ${written} is already listed as ${first} (header names are case-insensitive)`);
        continue;
      }
      seen.set(name, written);
      const r = parseValue(value);
      if (!r.ok) {
        failed = true;
        ctx.issues.push({ code: 'custom', message: r.error, input: value, path: [written] });
        continue;
      }
      out.push({ name, value: r.value });
    }
    return failed ? z.NEVER : out;
  });
}

/** A condition's values: one text, or a list of them (any matches). */
function parseConditionValues(input: unknown): Parsed<string[]> {
  const items = Array.isArray(input) ? input : [input];
  if (items.length === 0) return fail('a header condition needs at least one value');
  if (items.length > MAX_HEADER_VALUES) return fail(`at most ${MAX_HEADER_VALUES} values are allowed`);
  const values: string[] = [];
  for (const item of items) {
    const r = parseHeaderValue(item);
    if (!r.ok) return r;
    values.push(r.value);
  }
  return ok([...new Set(values)]);
}

const matchSchema = strict({
  path: parsedBy(parseRoutePath),
  methods: z
    .array(method)
    .min(1, { error: 'methods must not be empty; leave it out to match every method' })
    .optional(),
  host: oneOrMany(parseHostPattern, 'hosts', MAX_HOSTS).optional(),
  headers: headerMap(parseConditionValues, MAX_MATCH_HEADERS, (name) =>
    name === 'host' ? 'is matched with match.host (which leaves out the port and a trailing dot)' : null,
  ).optional(),
}).transform(
  ({ path, methods, host, headers }): RouteMatch => ({
    ...path,
    methods: methods ? [...new Set(methods)] : null,
    host: host ?? null,
    headers: headers ? headers.map((h) => ({ name: h.name, values: h.value })) : null,
  }),
);

// ---------------------------------------------------------------------------------------------------------
// The rejection: what a request over its limits is answered.

/**
 * Statuses a rejection may not use, and why: each either requires a header the proxy does not send,
 * or makes clients retry at once, which is the opposite of what a rejection asks.
 */
const REJECTION_STATUS_BANNED: Record<number, string> = {
  401: 'needs a WWW-Authenticate challenge',
  405: 'needs an Allow header',
  407: 'needs a Proxy-Authenticate challenge',
  408: 'makes clients retry at once',
  421: 'makes clients retry at once on another connection',
  426: 'needs an Upgrade header',
};

const rejectionStatus = parsedBy((input): Parsed<number> => {
  const hint = 'expected a 4xx or 5xx status (400-599), e.g. 429 (the default), 403 or 503';
  if (typeof input !== 'number' || !Number.isInteger(input) || input < 400 || input > 599)
    return fail(`${hint}, got ${describeValue(input)}`);
  const why = REJECTION_STATUS_BANNED[input];
  return why ? fail(`status ${input} ${why}; use 429 (the default), 403, 503 or another 4xx/5xx`) : ok(input);
});

/** Largest rejection body template, as JSON text: an error body, not a page. */
const MAX_REJECTION_BODY = 4 * 1024;

/** Headers a rejection may not set: the proxy writes them itself, or they would break the answer's framing. */
const REJECTION_HEADERS_OWN: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  'content-length',
  'content-type',
  'content-encoding',
  'retry-after',
  'ratelimit',
  'ratelimit-policy',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
]);

/** A rejection header's value: printable text, placeholders allowed. */
function parseRejectionHeaderValue(input: unknown): Parsed<string> {
  if (typeof input !== 'string') {
    const quoteIt = typeof input === 'number' || typeof input === 'boolean' ? ` (quote it: "${input}")` : '';
    return fail(`expected a header value as text${quoteIt}, got ${describeValue(input)}`);
  }
  const problem = headerValueProblem(input);
  if (problem) return fail(`header value ${describeValue(input)} ${problem}`);
  const split = splitPlaceholders(input);
  return split.ok ? ok(input) : fail(split.error);
}

/**
 * The body template: any JSON value, whose strings may hold placeholders. Each bad placeholder is an
 * issue at its string, carrying the placeholder as `params.token` (the loader points at it).
 */
const rejectionBody = z.unknown().transform((input, ctx): JsonValue => {
  const before = ctx.issues.length;
  const walk = (v: unknown, path: (string | number)[]): void => {
    const issue = (message: string, params?: Record<string, unknown>) =>
      ctx.issues.push({ code: 'custom', message, input: v, path, ...(params ? { params } : {}) });
    if (typeof v === 'string') {
      const split = splitPlaceholders(v);
      if (!split.ok) issue(split.error, { token: split.token });
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) issue(`expected a finite number, got ${describeValue(v)}`);
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => {
        walk(item, [...path, i]);
      });
    } else if (v !== null && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        if (k.includes('{{')) {
          ctx.issues.push({
            code: 'custom',
            message: `placeholders go in values, not keys: ${describeValue(k)}`,
            input: k,
            path: [...path, k],
            params: { key: true },
          });
        }
        walk(item, [...path, k]);
      }
    } else if (typeof v !== 'boolean' && v !== null) {
      issue(`expected JSON (a map, list, text, number, true, false or null), got ${describeValue(v)}`);
    }
  };
  walk(input, []);
  if (ctx.issues.length > before) return z.NEVER;
  const size = Buffer.byteLength(JSON.stringify(input));
  if (size > MAX_REJECTION_BODY) {
    ctx.issues.push({
      code: 'custom',
      message: `the body template is ${size} bytes as JSON, more than the ${MAX_REJECTION_BODY} allowed`,
      input,
    });
    return z.NEVER;
  }
  return input as JsonValue;
});

const rejectionSchema = strict({
  status: rejectionStatus.default(429),
  body: rejectionBody.optional(),
  headers: headerMap(parseRejectionHeaderValue, MAX_MATCH_HEADERS, (name) =>
    REJECTION_HEADERS_OWN.has(name)
      ? 'is set by the proxy itself (or would break the answer); it cannot be a rejection header'
      : null,
  ).optional(),
}).transform((r) => ({
  status: r.status,
  /** null: the default body. */
  body: r.body === undefined ? null : r.body,
  /** Lower-cased names; values as written (placeholders compiled by ratelimit/rejection-template.ts). */
  headers: Object.fromEntries((r.headers ?? []).map((h) => [h.name, h.value])) as Record<string, string>,
}));

const windowSchema = strict({
  name: name('window'),
  limit: count(1),
  per: duration,
});

const MAX_WINDOWS = 32;
const HOUR_MS = DURATION_UNITS_MS.h;
const DAY_MS = DURATION_UNITS_MS.d;
/** Plans one route may list: each is a limiter of its own. */
export const MAX_PLANS = 1_000;
/** Entries one allowlist may hold. */
export const MAX_ALLOWLIST = 1_000;

type Issues = { issues: z.core.$ZodRawIssue[] };

/** The window keys of a route's limits and of each of its plans, with one set of rules for both. */
const windowFields = {
  hourly: count(1).optional(),
  daily: count(1).optional(),
  // Every window costs every request of the route some work (and Redis some state): a handful is plenty.
  windows: z.array(windowSchema).max(MAX_WINDOWS).optional(),
};

interface WindowFields {
  hourly?: number | undefined;
  daily?: number | undefined;
  windows?: { name: string; limit: number; per: number }[] | undefined;
}

/**
 * The windows `fields` declare (hourly, daily, then the extra windows from shortest to longest), or
 * null after reporting what is wrong with them: no window at all (`none` says so), a duplicate name, a
 * longer window that admits fewer requests than a shorter one.
 */
function windowsOf(fields: WindowFields, ctx: Issues, none: string): WindowSpec[] | null {
  const issuesBefore = ctx.issues.length;
  // Each window with the path of the YAML value its limit came from, for error positions.
  const windows: { spec: WindowSpec; at: (string | number)[] }[] = [];
  if (fields.hourly !== undefined) {
    windows.push({ spec: { name: 'hourly', limit: fields.hourly, windowMs: HOUR_MS }, at: ['hourly'] });
  }
  if (fields.daily !== undefined) {
    windows.push({ spec: { name: 'daily', limit: fields.daily, windowMs: DAY_MS }, at: ['daily'] });
  }
  const extra = (fields.windows ?? [])
    .map((w, i) => ({ spec: { name: w.name, limit: w.limit, windowMs: w.per }, at: ['windows', i, 'limit'] }))
    .sort((a, b) => a.spec.windowMs - b.spec.windowMs);
  const seen = new Set(windows.map((w) => w.spec.name));
  for (const w of extra) {
    if (seen.has(w.spec.name)) {
      const at = [...w.at.slice(0, -1), 'name'];
      ctx.issues.push({
        code: 'custom',
        message: `duplicate window name "${w.spec.name}"`,
        path: at,
        input: w,
      });
    }
    seen.add(w.spec.name);
    windows.push(w);
  }
  if (windows.length === 0) ctx.issues.push({ code: 'custom', message: none, input: fields });
  // A longer window that admits fewer requests makes the shorter one dead weight: almost always a typo.
  for (const long of windows) {
    const offending = windows
      .filter((short) => short.spec.windowMs < long.spec.windowMs && short.spec.limit > long.spec.limit)
      .sort((a, b) => b.spec.limit - a.spec.limit)[0];
    if (offending) {
      const l = long.spec;
      const s = offending.spec;
      ctx.issues.push({
        code: 'custom',
        path: long.at,
        input: l.limit,
        message:
          `${l.name} allows ${l.limit} per ${formatDuration(l.windowMs)}, fewer than ${s.name}'s ${s.limit} per ` +
          `${formatDuration(s.windowMs)}; a longer window needs a limit at least as high`,
      });
    }
  }
  return ctx.issues.length > issuesBefore ? null : windows.map((w) => w.spec);
}

/** One key part, or a list of them (a composite key: counted per combination of their values). */
const keySchema = z.unknown().transform((input, ctx): LimitKey => {
  const issue = (message: string, path: number[] = []): typeof z.NEVER => {
    ctx.issues.push({ code: 'custom', message, input, path });
    return z.NEVER;
  };
  if (!Array.isArray(input)) {
    const r = parseKeyPart(input);
    return r.ok ? [r.value] : issue(r.error);
  }
  if (input.length === 0) return issue('a key needs at least one part; leave key out to count by ip');
  if (input.length > MAX_KEY_PARTS)
    return issue(`a key has at most ${MAX_KEY_PARTS} parts, got ${input.length}`);
  const parts: KeyPart[] = [];
  const first = new Map<string, number>();
  for (const [i, item] of input.entries()) {
    const r = parseKeyPart(item);
    if (!r.ok) {
      issue(r.error, [i]);
      continue;
    }
    const text = keyPartText(r.value);
    const earlier = first.get(text);
    if (earlier !== undefined) issue(`duplicate key part ${text} (also key[${earlier}])`, [i]);
    first.set(text, i);
    parts.push(r.value);
  }
  return parts;
});

const planSchema = strict(windowFields).transform(
  (p, ctx) => windowsOf(p, ctx, 'a plan needs at least one window: hourly, daily or windows') ?? z.NEVER,
);

/** Plan value → its windows, in the order written. Values are data (API keys even): each is kept as written. */
const planValuesSchema = z.unknown().transform((input, ctx) => {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    ctx.issues.push({ code: 'invalid_type', expected: 'record', input });
    return z.NEVER;
  }
  // Walked by hand rather than by z.record, which drops a "__proto__" key without a word.
  const entries = Object.entries(input);
  if (entries.length === 0) ctx.issues.push({ code: 'custom', message: 'needs at least one plan', input });
  if (entries.length > MAX_PLANS)
    ctx.issues.push({ code: 'custom', message: `at most ${MAX_PLANS} plans are allowed`, input });
  const out: { value: string; windows: WindowSpec[] }[] = [];
  for (const [value, raw] of entries) {
    if (value === '') {
      ctx.issues.push({
        code: 'custom',
        path: [value],
        input: value,
        message: 'a plan value cannot be empty',
      });
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      ctx.issues.push({ code: 'invalid_type', expected: 'object', path: [value], input: raw });
      continue;
    }
    const r = planSchema.safeParse(raw, { error: policyErrorMap });
    if (r.success) out.push({ value, windows: r.data });
    else {
      for (const iss of r.error.issues)
        ctx.issues.push({ ...iss, path: [value, ...iss.path] } as z.core.$ZodRawIssue);
    }
  }
  return out;
});

const plansSchema = strict({
  by: parsedBy(parsePlanBy),
  values: planValuesSchema,
});

const ipsSchema = z
  .array(parsedBy(parseCidr))
  .max(MAX_ALLOWLIST, { error: `at most ${MAX_ALLOWLIST} entries are allowed` });

/** Never limited on any route: addresses (the client's, as client_ip resolves it). */
const topAllowlistSchema = strict({ ips: ipsSchema.default([]) });

/** This route's own allowlist, besides the top-level one: addresses, and values of its key. */
const routeAllowlistSchema = strict({
  ips: ipsSchema.default([]),
  // A key that is all digits reads as a YAML number; it is still a key.
  keys: z
    .array(
      z
        .union([z.string(), z.number().transform(String)], {
          error: (iss) => `expected a string, got ${describeValue(iss.input)}`,
        })
        .refine((k) => k !== '', { error: 'an empty key would exempt every request that does not send one' }),
    )
    .max(MAX_ALLOWLIST, { error: `at most ${MAX_ALLOWLIST} entries are allowed` })
    .default([]),
});

/** What one request of a route counts in its windows: a fixed number of units, or a trusted header's. */
export type RouteCost =
  | { type: 'fixed'; units: number }
  | { type: 'header'; name: string; default: number; max: number };

const costHeaderSchema = strict({
  header: z
    .string()
    .regex(TOKEN_RE, { error: (iss) => `invalid header name ${describeValue(iss.input)}` })
    .transform((h) => h.toLowerCase()),
  default: count(1).default(1),
  max: count(1),
}).transform((c, ctx): RouteCost => {
  if (c.max < c.default) {
    ctx.issues.push({
      code: 'custom',
      path: ['max'],
      input: c.max,
      message: `max ${c.max} is below default ${c.default}; the default must be a cost the header could send`,
    });
    return z.NEVER;
  }
  return { type: 'header', name: c.header, default: c.default, max: c.max };
});

/** `cost: 5` or `cost: { header, default, max }`; checked against the windows by limitsSchema. */
const costSchema = z.unknown().transform((input, ctx): RouteCost => {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 1) return { type: 'fixed', units: input };
    ctx.issues.push({
      code: 'custom',
      input,
      message: `cost must be a whole number of at least 1 (the units each request counts), got ${describeValue(input)}`,
    });
    return z.NEVER;
  }
  if (typeof input === 'object' && input !== null && !Array.isArray(input)) {
    const r = costHeaderSchema.safeParse(input, { error: policyErrorMap });
    if (r.success) return r.data;
    for (const issue of r.error.issues) ctx.issues.push({ ...issue, input: undefined });
    return z.NEVER;
  }
  ctx.issues.push({
    code: 'custom',
    input,
    message: `expected a whole number of at least 1 (the cost of every request) or { header, default, max }, got ${describeValue(input)}`,
  });
  return z.NEVER;
});

const limitsSchema = strict({
  key: keySchema.default([{ type: 'ip' }]),
  ...windowFields,
  algorithm: z.enum(['sliding-log', 'sliding-counter']).default('sliding-log'),
  shadow: z.boolean().default(false),
  cost: costSchema.optional(),
  // Which rate-limit headers answers carry: the IETF fields, the X-RateLimit-* trio, both, or none.
  client_headers: z.enum(['ietf', 'legacy', 'both', 'none']).default('both'),
  rejection: rejectionSchema.prefault({}),
  plans: plansSchema.optional(),
  allowlist: routeAllowlistSchema.optional(),
}).transform((limits, ctx) => {
  const windows = windowsOf(limits, ctx, 'limits need at least one window: hourly, daily or windows');
  const { key, plans, allowlist } = limits;
  const single = key.length === 1 ? key[0]! : null;
  const issue = (path: (string | number)[], input: unknown, message: string): void => {
    ctx.issues.push({ code: 'custom', path, input, message });
  };
  if (plans?.by.type === 'key') {
    if (single === null) {
      issue(
        ['plans', 'by'],
        'key',
        `by: key needs a single-part key, and this route's key has ${key.length} parts; choose the plan by a header (by: header:<Name>)`,
      );
    } else if (single.type === 'ip') {
      issue(
        ['plans', 'by'],
        'key',
        'by: key cannot choose a plan by the client ip; key the route by a header, path or query',
      );
    }
  }
  if (allowlist && allowlist.keys.length > 0) {
    if (single === null) {
      issue(
        ['allowlist', 'keys'],
        allowlist.keys,
        `allowlist keys need a single-part key, and this route's key has ${key.length} parts; list addresses under ips`,
      );
    } else if (single.type === 'ip') {
      issue(
        ['allowlist', 'keys'],
        allowlist.keys,
        'this route is keyed by ip: list addresses under ips, not keys',
      );
    }
  }
  // A request that costs more than a window admits could never pass: refused at load, not at 3 a.m.
  // Every plan's windows too: the cost is the route's, whatever the plan.
  const cost: RouteCost = limits.cost ?? { type: 'fixed', units: 1 };
  const units = cost.type === 'fixed' ? cost.units : cost.max;
  const windowSets: [string, readonly WindowSpec[] | null][] = [
    ['', windows],
    ...(plans?.values ?? []).map((p): [string, readonly WindowSpec[]] => [` (plan ${p.value})`, p.windows]),
  ];
  for (const [plan, set] of windowSets) {
    const smallest = (set ?? []).reduce<WindowSpec | null>(
      (m, w) => (m === null || w.limit < m.limit ? w : m),
      null,
    );
    if (smallest !== null && units > smallest.limit) {
      issue(
        cost.type === 'fixed' ? ['cost'] : ['cost', 'max'],
        units,
        `${cost.type === 'fixed' ? 'cost' : 'max'} ${units} is more than ${smallest.name}'s limit of ` +
          `${smallest.limit}${plan}; a request that costs more than a window's limit could never be admitted`,
      );
      break;
    }
  }
  if (windows === null || ctx.issues.length > 0) return z.NEVER;
  return {
    key,
    /** The default plan's windows: hourly, daily, then the extra windows from shortest to longest. */
    windows,
    algorithm: limits.algorithm,
    shadow: limits.shadow,
    /** null: every request gets `windows`. */
    plans: plans ?? null,
    /** null: only the top-level allowlist applies. */
    allowlist: allowlist && (allowlist.ips.length > 0 || allowlist.keys.length > 0) ? allowlist : null,
    cost,
    clientHeaders: limits.client_headers,
    rejection: limits.rejection,
  };
});

const routeSchema = strict({
  name: name('route'),
  match: matchSchema,
  upstream: z.string(),
  max_body: size.optional(),
  limits: limitsSchema.optional(),
})
  .superRefine((r, ctx) => {
    // An exact route's path has a fixed number of segments: a key reading past them always reads nothing.
    // (Refinements run even when a part failed, and a failed part is no object: check only valid ones.)
    if (typeof r.limits !== 'object' || typeof r.match !== 'object' || r.match.prefix) return;
    if (!Array.isArray(r.limits.key)) return;
    const segments = r.match.path.split('/').filter((s) => s !== '').length;
    r.limits.key.forEach((part, i) => {
      if (part.type === 'path' && part.segment > segments) {
        ctx.addIssue({
          code: 'custom',
          path: ['limits', 'key', ...(r.limits!.key.length > 1 ? [i] : [])],
          input: keyPartText(part),
          message: `path:${part.segment} reads past the end of ${r.match.pattern} (${segments} segment${segments === 1 ? '' : 's'}); every request would count under one empty part`,
        });
      }
    });
  })
  .transform((r) => ({
    name: r.name,
    match: r.match,
    upstream: r.upstream,
    /** null: unlimited. */
    maxBodyBytes: r.max_body ?? null,
    /** null: forwarded unlimited. */
    limits: r.limits ?? null,
  }));

const upstreamUrl = parsedBy((input): Parsed<string> => {
  const hint = 'expected the http(s) origin of the upstream (e.g. http://127.0.0.1:8000)';
  if (typeof input !== 'string') return fail(`${hint}, got ${describeValue(input)}`);
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return fail(`${hint}, got ${JSON.stringify(input)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return fail(`${hint}, got ${JSON.stringify(input)}`);
  if (url.username || url.password) return fail('credentials in an upstream url are not supported');
  // Requests are forwarded with their own path; a base path here would be silently ignored.
  if (url.pathname !== '/' || url.search || url.hash) {
    return fail(`upstream url must be an origin without path or query, got ${JSON.stringify(input)}`);
  }
  return ok(url.origin);
});

const upstreamSchema = strict({
  url: upstreamUrl,
  timeouts: strict({
    connect: timeout.default(2_000),
    /** Until the upstream's response headers arrive. */
    response: timeout.default(60_000),
    /** Longest pause while a body streams. */
    idle: timeout.default(30_000),
  })
    .transform((t) => ({ connectMs: t.connect, responseMs: t.response, idleMs: t.idle }))
    .prefault({}),
  breaker: strict({
    failure_threshold: count(1).default(5),
    success_threshold: count(1).default(2),
    timeout: duration.default(60_000),
    half_open_max_calls: count(1).default(3),
    failure_statuses: z.array(z.number().int().min(400).max(599)).default([502, 503, 504]),
    // Optional second trip rule: the share of failed calls over a rolling window.
    failure_rate: strict({
      threshold: z.number().gt(0).max(1),
      window: duration.default(60_000),
      minimum_calls: count(1).default(20),
    }).optional(),
  })
    .transform((b) => ({
      failureThreshold: b.failure_threshold,
      successThreshold: b.success_threshold,
      timeoutMs: b.timeout,
      halfOpenMaxCalls: b.half_open_max_calls,
      failureStatuses: [...new Set(b.failure_statuses)].sort((x, y) => x - y),
      failureRate: b.failure_rate
        ? {
            threshold: b.failure_rate.threshold,
            windowMs: b.failure_rate.window,
            minimumCalls: b.failure_rate.minimum_calls,
          }
        : null,
    }))
    .prefault({}),
});

const adminSchema = strict({
  listen: listen.default({ host: '127.0.0.1', port: 9090 }),
  // A token that is all digits reads as a YAML number; it is still a token.
  token: z
    .union([z.string(), z.number().transform(String)], {
      error: (iss) => `expected a string, got ${describeValue(iss.input)}`,
    })
    .optional(),
}).transform((a) => ({ listen: a.listen, token: a.token ? a.token : null }));

const storeSchema = strict({
  type: z.enum(['memory', 'redis']).default('memory'),
  url: parsedBy((input): Parsed<string> => {
    const hint = 'expected a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379)';
    if (typeof input !== 'string') return fail(`${hint}, got ${describeValue(input)}`);
    return /^rediss?:\/\/[^\s]+$/.test(input) && URL.canParse(input)
      ? ok(input)
      : fail(`${hint}, got ${describeValue(input)}`);
  }).default('redis://127.0.0.1:6379'),
  prefix: z.string().default('floodgate:'),
  timeout: timeout.default(50),
  on_error: z.enum(['local', 'allow', 'deny']).default('local'),
  // true: `url` is one seed node of a Redis Cluster (the limiter's keys carry hash tags).
  cluster: z.boolean().default(false),
  // Identities the memory store holds at once (type memory, and the on_error: local fallback); past it,
  // one is evicted, never one that is over its limit while another is not (memory-store.ts).
  max_keys: count(1).default(100_000),
  // Redis: replay Redis's refusal of an identity locally, for at most a second (redis-store.ts).
  refusal_cache: z.boolean().default(false),
}).transform((s) => ({
  type: s.type,
  url: s.url,
  prefix: s.prefix,
  timeoutMs: s.timeout,
  onError: s.on_error,
  cluster: s.cluster,
  maxKeys: s.max_keys,
  refusalCache: s.refusal_cache,
}));

const clientIpSchema = strict({
  trusted_proxies: z.array(parsedBy(parseCidr)).default([]),
  // One customer usually holds a whole IPv6 /64: keying each address apart would hand it 2^64 quotas.
  ipv6_prefix: z
    .number()
    .int()
    .min(1, { error: 'ipv6_prefix must be between 1 and 128' })
    .max(128, { error: 'ipv6_prefix must be between 1 and 128' })
    .default(64),
}).transform((c) => ({ trustedProxies: c.trusted_proxies, ipv6Prefix: c.ipv6_prefix }));

type RouteOut = z.output<typeof routeSchema>;

/** True when every request `b` would take is taken by the earlier `a`, so `b` can never match. */
function shadows(a: Pick<RouteOut, 'match'>, b: Pick<RouteOut, 'match'>): boolean {
  const methods =
    a.match.methods === null || (b.match.methods?.every((m) => a.match.methods!.includes(m)) ?? false);
  if (!methods || !conditionsCover(a.match, b.match)) return false;
  if (!a.match.prefix) return !b.match.prefix && directory(a.match.path) === directory(b.match.path);
  // A prefix takes everything under it, and its directory itself ('/a/*' takes '/a').
  return (
    b.match.path.startsWith(a.match.path) ||
    (!b.match.prefix && directory(b.match.path) === directory(a.match.path))
  );
}

/**
 * Whether `a`'s host and header conditions hold for every request that meets `b`'s: `a` has none, or
 * each of its hosts and header values takes in all of `b`'s.
 */
function conditionsCover(a: RouteMatch, b: RouteMatch): boolean {
  if (a.host !== null && (b.host === null || !b.host.every((h) => a.host!.some((p) => hostCovers(p, h)))))
    return false;
  return (a.headers ?? []).every((ha) => {
    const hb = b.headers?.find((h) => h.name === ha.name);
    return hb?.values.every((v) => ha.values.includes(v)) ?? false;
  });
}

/** A path as routing compares it: without a trailing slash. */
function directory(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/** Far more than a sidecar needs; it keeps the checks across routes (which one shadows which) cheap. */
const MAX_ROUTES = 1_000;

const policyShape = {
  version: z
    .literal(1, {
      error: (iss) => `unsupported version ${describeValue(iss.input)}; this floodgate reads version 1`,
    })
    .default(1),
  listen: listen.default({ host: '127.0.0.1', port: 8080 }),
  workers: parsedBy(parseWorkers).default(1),
  admin: adminSchema.prefault({}),
  store: storeSchema.prefault({}),
  client_ip: clientIpSchema.prefault({}),
  allowlist: topAllowlistSchema.prefault({}),
  upstreams: z.record(name('upstream'), upstreamSchema),
  routes: z
    .array(routeSchema)
    .min(1, { error: 'at least one route is needed' })
    .max(MAX_ROUTES, { error: `at most ${MAX_ROUTES} routes are allowed` }),
};

/** The keys a policy may have at its top level. */
export const POLICY_KEYS: readonly string[] = Object.keys(policyShape);

/**
 * The shape of a policy. The checks across its parts (referenceIssues, below) are not in it: they also
 * run when some parts are invalid, on the parts that are readable, so validatePolicyData is the entry.
 */
export const policySchema = strict(policyShape).transform((p) => ({
  version: p.version,
  listen: p.listen,
  workers: p.workers,
  admin: p.admin,
  store: p.store,
  clientIp: p.client_ip,
  /** Addresses never limited on any route. */
  allowlist: p.allowlist,
  upstreams: Object.fromEntries(Object.entries(p.upstreams).map(([n, u]) => [n, { name: n, ...u }])),
  /** In declaration order: the first matching route wins. */
  routes: p.routes,
}));

// ---------------------------------------------------------------------------------------------------------
// Types, inferred from the schema. The loader deep-freezes the policy, and the types say so.

export type DeepReadonly<T> = T extends readonly (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** The normalized policy in force (loader output). */
export type Policy = DeepReadonly<z.output<typeof policySchema>>;
/** What the YAML may say (snake_case keys, units as text). */
export type PolicyInput = z.input<typeof policySchema>;
export type Route = Policy['routes'][number];
export type RouteLimits = NonNullable<Route['limits']>;
export type Upstream = Policy['upstreams'][string];
export type BreakerSettings = Upstream['breaker'];
export type StoreSettings = Policy['store'];

// ---------------------------------------------------------------------------------------------------------
// Messages. One error map for the whole schema, so every message reads the same way.

const EXPECTED: Record<string, string> = {
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  boolean: 'true or false',
  object: 'a map',
  record: 'a map',
  array: 'a list',
};

/** The zod error map used when validating a policy; messages name values, not zod internals. */
export const policyErrorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type': {
      const key = iss.path?.at(-1);
      if ((iss.path?.length ?? 0) === 0) {
        // Quoting a whole file that is no policy (it read as one long string) would only echo it.
        return iss.input == null
          ? 'the policy is empty; it needs at least upstreams and routes'
          : `a policy is a map of keys (${POLICY_KEYS.join(', ')}), not ${kindOf(iss.input)}`;
      }
      if (iss.input === undefined && key !== undefined) return `missing required key "${String(key)}"`;
      return `expected ${EXPECTED[iss.expected] ?? iss.expected}, got ${describeValue(iss.input)}`;
    }
    case 'invalid_value':
      return `expected one of ${iss.values.map(String).join(', ')}; got ${describeValue(iss.input)}`;
    case 'too_small':
      if (iss.origin === 'array') return `needs at least ${iss.minimum} item${iss.minimum === 1 ? '' : 's'}`;
      return `must be ${iss.inclusive ? 'at least' : 'more than'} ${iss.minimum}, got ${describeValue(iss.input)}`;
    case 'too_big':
      if (iss.origin === 'array') return `has more than ${iss.maximum} items, the most allowed`;
      return `must be ${iss.inclusive ? 'at most' : 'less than'} ${iss.maximum}, got ${describeValue(iss.input)}`;
    case 'invalid_key':
      return `invalid name ${describeValue(iss.input)}; use ${NAME_HINT}`;
    default:
      return undefined;
  }
};

export type PolicyValidation =
  | { readonly success: true; readonly data: z.output<typeof policySchema> }
  | { readonly success: false; readonly issues: readonly z.core.$ZodIssue[] };

/**
 * Validates parsed YAML data: the schema and the checks across parts, in one pass that reports every
 * issue of both. Issues carry messages from policyErrorMap and paths into the YAML.
 */
export function validatePolicyData(data: unknown): PolicyValidation {
  const result = policySchema.safeParse(data, { error: policyErrorMap });
  const references = referenceIssues(data);
  if (result.success && references.length === 0) return { success: true, data: result.data };
  return { success: false, issues: [...(result.success ? [] : result.error.issues), ...references] };
}

// ---------------------------------------------------------------------------------------------------------
// Checks across parts: each route's upstream is defined, route names are unique, no route is shadowed by
// an earlier one. They read the raw data, so they run whether or not the rest of the policy is valid, and
// each looks only at the parts it can read: a route's name if it is a valid name, its upstream if it is
// text, its match if the match is valid on its own. A part that is itself wrong has its own error and
// gives none derived from it (a match with a typo in its methods is not said to shadow anything).

interface ReadableRoute {
  name: string | undefined;
  upstream: string | undefined;
  match: RouteMatch | undefined;
}

function readable<T>(schema: z.ZodType<T>, input: unknown): T | undefined {
  const r = schema.safeParse(input);
  return r.success ? r.data : undefined;
}

function isPlainMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const routeName = name('route');

function referenceIssues(data: unknown): z.core.$ZodIssue[] {
  if (!isPlainMap(data) || !Array.isArray(data.routes) || data.routes.length > MAX_ROUTES) return [];
  const routes: (ReadableRoute | null)[] = data.routes.map((r: unknown) =>
    isPlainMap(r)
      ? {
          name: readable(routeName, r.name),
          upstream: typeof r.upstream === 'string' ? r.upstream : undefined,
          match: readable(matchSchema, r.match),
        }
      : null,
  );
  // Without a readable map of upstreams (missing, or not a map) every reference would be "unknown".
  const defined = isPlainMap(data.upstreams) ? data.upstreams : null;
  const names = defined ? Object.keys(defined) : [];
  const upstreams = names.length > 10 ? [...names.slice(0, 10), `… ${names.length - 10} more`] : names;
  const issues: z.core.$ZodIssue[] = [];
  const issue = (path: PropertyKey[], input: unknown, message: string) =>
    issues.push({ code: 'custom', path, input, message });
  const firstByName = new Map<string, number>();
  routes.forEach((r, i) => {
    if (!r) return;
    if (defined && r.upstream !== undefined && !Object.hasOwn(defined, r.upstream)) {
      issue(
        ['routes', i, 'upstream'],
        r.upstream,
        `unknown upstream "${r.upstream}" (defined: ${upstreams.join(', ') || 'none'})`,
      );
    }
    if (r.name !== undefined) {
      const first = firstByName.get(r.name);
      if (first === undefined) firstByName.set(r.name, i);
      else
        issue(
          ['routes', i, 'name'],
          r.name,
          `duplicate route name "${r.name}" (first used by routes[${first}])`,
        );
    }
    const match = r.match;
    if (match === undefined) return;
    const earlier = routes.findIndex(
      (a, j) => j < i && a?.match !== undefined && shadows({ match: a.match }, { match }),
    );
    if (earlier >= 0) {
      const by = routes[earlier]!.name;
      issue(
        ['routes', i, 'match'],
        match,
        `${r.name === undefined ? 'this route' : `route "${r.name}"`} can never match: routes[${earlier}]` +
          `${by === undefined ? '' : ` ("${by}")`} comes first and takes every request it would`,
      );
    }
  });
  return issues;
}

/** 3_600_000 → '1h', 90_000 → '90s', 1_500 → '1500ms': the largest unit that divides exactly. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const n = DURATION_UNITS_MS[unit];
    if (ms >= n && ms % n === 0) return `${ms / n}${unit}`;
  }
  return `${ms}ms`;
}

/** 209_715_200 → '200mb'; bytes that no unit divides exactly stay bytes ('1000b'). */
export function formatSize(bytes: number): string {
  for (const unit of ['gb', 'mb', 'kb'] as const) {
    const n = SIZE_UNITS[unit];
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes}b`;
}
