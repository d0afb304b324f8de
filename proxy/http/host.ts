// Host names as routes compare them, on both sides: the `match.host` a policy writes (parseHostPattern)
// and the authority a request names (canonicalHost). Both are reduced to one spelling, so that the
// spellings DNS and upstreams treat as one host are one host here too: letters lower-cased, the port
// and one trailing dot left out (API.Example.com.:8080 is api.example.com), IPv6 literals in their
// canonical form ([0:0::1] is [::1]). Anything else is a different host: 127.1 is not 127.0.0.1, and a
// request whose Host is not a host name at all matches no host condition.
import { isIP } from 'node:net';
import { describeValue, fail, ok, type Parsed } from '../../core/units.js';

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
/** Labels a wildcard may stand for: one or more, none empty. */
const LABELS = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

/** '[::1]' for any spelling of an IPv6 address; null when it is none. */
function canonicalIpv6(inner: string): string | null {
  if (isIP(inner) !== 6 || inner.includes('%')) return null;
  try {
    return new URL(`http://[${inner}]/`).hostname;
  } catch {
    return null;
  }
}

/**
 * The host a request names (its absolute-form authority, else its Host header), as routes compare it;
 * '' when it has none or it is not a host ('a:b:c', '[zz]', 'host:port:x').
 */
export function canonicalHost(authority: string): string {
  if (authority === '') return '';
  const text = authority.toLowerCase();
  if (text.charCodeAt(0) === 0x5b /* [ */) {
    const end = text.indexOf(']');
    if (end === -1 || !isPort(text, end + 1)) return '';
    return canonicalIpv6(text.slice(1, end)) ?? '';
  }
  const colon = text.indexOf(':');
  if (colon !== -1 && !isPort(text, colon)) return '';
  let host = colon === -1 ? text : text.slice(0, colon);
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host.endsWith('.') ? '' : host;
}

/** Whether text[from…] is empty or ':' and digits (an empty port is allowed, as in URIs). */
function isPort(text: string, from: number): boolean {
  if (from === text.length) return true;
  if (text.charCodeAt(from) !== 0x3a /* : */) return false;
  for (let i = from + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * A `match.host` value: a host name, an IPv4 or IPv6 address, or a wildcard '*.example.com' (one or
 * more labels under example.com, never example.com itself), in the canonical spelling.
 */
export function parseHostPattern(input: unknown): Parsed<string> {
  const hint = 'expected a host name (api.example.com), a wildcard (*.example.com) or an IP address';
  if (typeof input !== 'string') return fail(`${hint}, got ${describeValue(input)}`);
  const bad = (why: string) => fail(`invalid host ${describeValue(input)}: ${why}`);
  if (input === '') return fail(`${hint}, got ""`);
  let text = input.toLowerCase();
  const wildcard = text.startsWith('*.');
  if (wildcard) text = text.slice(2);
  if (text.includes('*')) return bad('a wildcard is only a leading "*." (*.example.com)');
  if (text.startsWith('[') || text.split(':').length > 2) {
    const inner = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
    const ip = canonicalIpv6(inner);
    if (ip === null) {
      const port = text.startsWith('[') ? /\]:\d*$/.test(text) : !text.includes('::') && /:\d+$/.test(text);
      return bad(port ? 'hosts are compared without their port; leave it out' : 'not an IPv6 address');
    }
    return wildcard ? bad('a wildcard needs a host name after "*."') : ok(ip);
  }
  if (text.includes(':')) return bad('hosts are compared without their port; leave it out');
  if (text.endsWith('.')) text = text.slice(0, -1);
  if (/^[\d.]+$/.test(text)) {
    if (isIP(text) !== 4) return bad('not an IPv4 address');
    return wildcard ? bad('a wildcard needs a host name after "*."') : ok(text);
  }
  if (text.length > 253 || !text.split('.').every((l) => LABEL.test(l))) {
    return bad('use letters, digits, "-" and "_" in dot-separated labels of at most 63');
  }
  return ok(wildcard ? `*.${text}` : text);
}

/** A route's hosts, compiled: a canonical host (canonicalHost) matches when any pattern takes it. */
export function compileHostCondition(patterns: readonly string[]): (host: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.startsWith('*.')));
  const suffixes = patterns.filter((p) => p.startsWith('*.')).map((p) => p.slice(1));
  if (suffixes.length === 0) return (host) => exact.has(host);
  return (host) => {
    if (exact.has(host)) return true;
    for (const s of suffixes) {
      if (host.length > s.length && host.endsWith(s) && LABELS.test(host.slice(0, -s.length))) return true;
    }
    return false;
  };
}

/** Whether every host `b` takes is taken by `a` (both canonical patterns). */
export function hostCovers(a: string, b: string): boolean {
  if (a === b) return true;
  if (!a.startsWith('*.')) return false;
  // '*.example.com' takes 'x.example.com' and '*.x.example.com'.
  const suffix = a.slice(1);
  const name = b.startsWith('*.') ? b.slice(1) : `.${b}`;
  return name.length > suffix.length && name.endsWith(suffix);
}
