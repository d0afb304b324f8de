// What a route's limits count a request under, compiled once from its key: one part (the client's
// ip, a header, a path segment, a query parameter) or several counted together. The same readers
// serve the data plane, /admin/limits and `floodgate explain`, so all three agree on what a value is.
//
// - ip: the client's address as client_ip resolves it (an IPv6 client by its network prefix).
// - header: the value as Node hands it over (surrounding spaces trimmed). A single header key counts a
//   request without the header (or with it empty) by its ip, as it always has; in a composite key an
//   absent header is an empty part, so the other parts still tell clients apart.
// - path:N: the Nth segment of the path routing matched (normalize-path.ts: dot segments resolved,
//   ;parameters dropped, unreserved escapes decoded, ASCII lower-cased), then its remaining escapes
//   decoded to bytes: /v1/users/ABC, /v1/users/abc, /v1/users/%41bc and /v1/users/aBc/ count as one.
//   An id that differs from another only in ASCII case shares its quota: a limit must not be escaped
//   by respelling a path, which is the rule routing follows too.
// - query:name: the decoded value (form rules: '+' is a space, %41 is A; invalid UTF-8 reads as
//   U+FFFD). Values keep their case. Absent and empty count alike. Two copies of the parameter are
//   refused (400): frameworks disagree on which one the service reads.
import type { IncomingHttpHeaders } from 'node:http';
import type { KeyPart, LimitKey } from '../config/schema.js';
import { canonicalIp } from './client-ip.js';
import { compositeIdentity, headerIdentity, ipIdentity, pathIdentity, queryIdentity } from './identity.js';
import { decodeUnreserved, type NormalizedTarget } from './normalize-path.js';

/** Why a request's key cannot be read without ambiguity: the client's fault, answered 400. */
export interface KeyRefusal {
  readonly refused: string;
}

/** What a key reads of a request (an IncomingMessage is one). */
export interface KeySource {
  readonly headers: IncomingHttpHeaders;
}

/** The identity to count `req` under, given its ip identity and its normalized target; or a refusal. */
export type KeyOf = (req: KeySource, ipKey: string, target: NormalizedTarget) => string | KeyRefusal;

/** Compiles a route's key: a single part is one closure over one lookup, as before composite keys. */
export function compileKey(key: LimitKey): KeyOf {
  if (key.length === 1) return singleKey(key[0]!);
  const readers = key.map(partReader);
  const n = readers.length;
  return (req, ipKey, target) => {
    const values: string[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const v = readers[i]!(req, ipKey, target);
      if (typeof v !== 'string') return v;
      values[i] = v;
    }
    return compositeIdentity(values);
  };
}

function singleKey(part: KeyPart): KeyOf {
  switch (part.type) {
    case 'ip':
      return (_req, ipKey) => ipKey;
    case 'header': {
      const name = part.name;
      return (req, ipKey) => {
        const value = req.headers[name];
        // A second copy of the header was refused before this (request-headers.ts), so this is a string.
        if (typeof value === 'string' && value !== '') return headerIdentity(value);
        return ipKey;
      };
    }
    case 'path': {
      const n = part.segment;
      return (_req, _ipKey, target) => pathIdentity(pathSegment(target.matchPath, n));
    }
    case 'query': {
      const read = queryReader(part.name);
      return (_req, _ipKey, target) => {
        const v = read(target.forwardPath);
        return typeof v === 'string' ? queryIdentity(v) : v;
      };
    }
  }
}

/** One part's raw value inside a composite key ('' when absent). */
function partReader(
  part: KeyPart,
): (req: KeySource, ipKey: string, target: NormalizedTarget) => string | KeyRefusal {
  switch (part.type) {
    case 'ip':
      return (_req, ipKey) => ipKey;
    case 'header': {
      const name = part.name;
      return (req) => {
        const value = req.headers[name];
        return typeof value === 'string' ? value : '';
      };
    }
    case 'path': {
      const n = part.segment;
      return (_req, _ipKey, target) => pathSegment(target.matchPath, n);
    }
    case 'query': {
      const read = queryReader(part.name);
      return (_req, _ipKey, target) => read(target.forwardPath);
    }
  }
}

/** Reads one query parameter of a request target: its decoded value, '' when absent, a refusal when repeated. */
function queryReader(name: string): (target: string) => string | KeyRefusal {
  const refusal: KeyRefusal = Object.freeze({ refused: `more than one ${name} query parameter` });
  return (target) => {
    const v = queryValue(target, name);
    return v === DUPLICATE ? refusal : (v ?? '');
  };
}

const DUPLICATE = Symbol('duplicate');

/** The decoded value of `name` in `target`'s query: null when absent, DUPLICATE when given twice. */
export function queryValue(target: string, name: string): string | null | typeof DUPLICATE {
  const q = target.indexOf('?');
  if (q === -1) return null;
  const values = new URLSearchParams(target.slice(q + 1)).getAll(name);
  if (values.length > 1) return DUPLICATE;
  return values[0] ?? null;
}

export function isDuplicate(v: unknown): v is typeof DUPLICATE {
  return v === DUPLICATE;
}

/** The Nth (1-based) segment of a normalized path with its escapes decoded; '' past the end. */
export function pathSegment(matchPath: string, n: number): string {
  let start = 0;
  for (let i = 0; i < n; i++) {
    const slash = matchPath.indexOf('/', start);
    if (slash === -1) return '';
    start = slash + 1;
  }
  const end = matchPath.indexOf('/', start);
  return decodeEscapes(end === -1 ? matchPath.slice(start) : matchPath.slice(start, end));
}

/** %XX → the byte XX as one char (latin1), so a%21 and a! read alike; the path itself is ASCII. */
function decodeEscapes(segment: string): string {
  if (!segment.includes('%')) return segment;
  return segment.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );
}

/**
 * A segment as a policy or an admin writes it (an allowlist key, a plan value, /admin/limits' key) in
 * the form the data plane reads: unreserved escapes decoded, then ASCII lower-cased (as routing does),
 * non-ASCII as its UTF-8 bytes, the other escapes decoded. 'ABC', 'abc' and '%41bc' are one.
 */
export function pathSegmentOf(written: string): string {
  const lower = decodeUnreserved(written).replace(/[A-Z]+/g, (s) => s.toLowerCase());
  return decodeEscapes(Buffer.from(lower, 'utf8').toString('latin1'));
}

/** The identity of a single-part key (not ip) for a value as read from a request (keyPartValues). */
export function countedIdentity(part: KeyPart, value: string): string {
  switch (part.type) {
    case 'header':
      return headerIdentity(value);
    case 'path':
      return pathIdentity(value);
    case 'query':
      return queryIdentity(value);
    case 'ip':
      throw new TypeError('an ip key has no single identity here; ipIdentity() gives it');
  }
}

/** The identity of a single-part key (not ip) for a value as a policy or an admin writes it. */
export function singleIdentity(part: KeyPart, value: string): string {
  switch (part.type) {
    case 'header':
      return headerIdentity(value);
    case 'path':
      return pathIdentity(pathSegmentOf(value));
    case 'query':
      return queryIdentity(value);
    case 'ip':
      throw new TypeError('an ip key has no single identity here; ipIdentity() gives it');
  }
}

/**
 * The identity /admin/limits looks up: one value per part in the key's order, written as a client
 * sends it (an ip as an address, a path segment in any case or escaping).
 */
export function identityOfValues(key: LimitKey, values: readonly string[], ipv6Prefix: number): string {
  const ip = (v: string): string => ipIdentity(canonicalIp(v), ipv6Prefix);
  if (key.length === 1) {
    const part = key[0]!;
    return part.type === 'ip' ? ip(values[0]!) : singleIdentity(part, values[0]!);
  }
  return compositeIdentity(
    key.map((part, i) => {
      const v = values[i]!;
      return part.type === 'ip' ? ip(v) : part.type === 'path' ? pathSegmentOf(v) : v;
    }),
  );
}

/** One part of a key as a request gives it: its value, or why it has none. */
export type PartValue =
  | { readonly kind: 'value'; readonly value: string }
  | { readonly kind: 'absent' }
  | { readonly kind: 'duplicate' };

/** Every part's value for `explain`: headers by lower-cased name, the ip as the client's address. */
export function keyPartValues(
  key: LimitKey,
  headers: Readonly<Record<string, string>>,
  target: NormalizedTarget,
  clientIp: string | null,
): PartValue[] {
  return key.map((part): PartValue => {
    switch (part.type) {
      case 'ip':
        return clientIp === null ? { kind: 'absent' } : { kind: 'value', value: clientIp };
      case 'header': {
        const v = headers[part.name];
        return v === undefined ? { kind: 'absent' } : { kind: 'value', value: v };
      }
      case 'path':
        return { kind: 'value', value: pathSegment(target.matchPath, part.segment) };
      case 'query': {
        const v = queryValue(target.forwardPath, part.name);
        if (v === DUPLICATE) return { kind: 'duplicate' };
        return v === null ? { kind: 'absent' } : { kind: 'value', value: v };
      }
      default:
        return part satisfies never;
    }
  });
}
