// The identity a request is counted under, in one place for the data plane and /admin/limits.
// Keys are namespaced by kind, so a header value can never collide with an IP. An IPv6 client is
// counted by its network prefix (a /64 by default): one customer is usually given a whole /64, and
// keying each of its 2^64 addresses apart would hand it as many quotas.
import { isIPv6 } from 'node:net';

export function headerIdentity(value: string): string {
  return 'h:' + value;
}

/** A path segment as limit-key.ts reads it (normalized and decoded). */
export function pathIdentity(segment: string): string {
  return 'p:' + segment;
}

/** A query parameter's decoded value ('' when absent). */
export function queryIdentity(value: string): string {
  return 'q:' + value;
}

/**
 * Several parts counted together, each written as its length, ':', then itself. A client picks
 * header and query values, so a separator could be sent inside one ("a|b" + "c" against "a" + "b|c");
 * a length prefix cannot be: the digits before the first ':' say where the part ends, so two different
 * tuples never give one identity. Lengths count UTF-16 units, and the limiter hashes the UTF-8 bytes:
 * the parts are latin1 (headers, path bytes) or well-formed Unicode (decoded query values, invalid
 * UTF-8 already replaced with U+FFFD), so that encoding is one-to-one too.
 */
export function compositeIdentity(parts: readonly string[]): string {
  let id = 'k';
  for (const part of parts) id += part.length + ':' + part;
  return id;
}

/** `ip` must be canonical (client-ip.ts): IPv4-mapped IPv6 addresses arrive as plain IPv4. */
export function ipIdentity(ip: string, ipv6Prefix: number): string {
  if (!isIPv6(ip) || ipv6Prefix >= 128) return 'ip:' + ip;
  return 'ip:' + ipv6Network(ip, ipv6Prefix);
}

/** The network of `ip` with `bits` prefix bits, written in full: 2001:db8:0:1:0:0:0:0/64. */
export function ipv6Network(ip: string, bits: number): string {
  const groups = ipv6Groups(ip);
  const out: string[] = [];
  for (let g = 0; g < 8; g++) {
    const keep = Math.max(0, Math.min(16, bits - g * 16));
    const mask = keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff;
    out.push((groups[g]! & mask).toString(16));
  }
  return `${out.join(':')}/${bits}`;
}

/** The eight 16-bit groups of a valid IPv6 address (zone dropped, '::' expanded, IPv4 tail as two groups). */
function ipv6Groups(ip: string): number[] {
  const zone = ip.indexOf('%');
  let text = zone === -1 ? ip : ip.slice(0, zone);
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) !== -1) {
    const [a = 0, b = 0, c = 0, d = 0] = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((h) => Number.parseInt(h, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
