// The path that routing sees. Limits must not be skipped by spelling a path differently, so matching
// runs on a canonical form that every common upstream would route to the same handler:
// - dot and empty segments resolved, unreserved escapes decoded, case folded (/a/../x, //x, /%78, /X);
// - path parameters dropped (/x;jsessionid=1: Tomcat and Spring strip them before routing, and read
//   /a/..;/x as /x);
// - a trailing slash dropped (/x/: Express and most frameworks route it to /x).
// The upstream receives the canonical path with its original case, parameters and trailing slash.
// A fragment never belongs in a request target, so a target with '#' is refused; an absolute-form
// target (GET http://host/x) is routed by its path, and its authority replaces Host, as RFC 9112
// §3.2.2 tells a server to do.

const NEEDS_WORK = /%|\/\/|\/\.|[A-Z]|\\|;|.\/$/;

// Unreserved characters (RFC 3986 §2.3) may be decoded without changing meaning; anything
// else stays encoded.
const UNRESERVED = /%(4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2D|2E|5F|7E)/gi;

/** Decodes the escapes of unreserved characters (%41 → A), as matching does; the rest stay encoded. */
export function decodeUnreserved(text: string): string {
  return text.replace(UNRESERVED, (m) => String.fromCharCode(Number.parseInt(m.slice(1), 16)));
}

// An encoded slash or backslash is a separator to an upstream that decodes before it splits the
// path, and plain text to one that does not: /open/..%2Flimited is /limited to the first. Routing
// cannot know which reading the upstream takes, so such a path is refused rather than guessed at
// (Apache's AllowEncodedSlashes Off does the same).
const ENCODED_SEPARATOR = /%(2F|5C)/i;

// scheme://host[:port] followed by the path. Nothing else may stand in the authority (userinfo, a
// backslash), since it becomes the Host the upstream sees.
const ABSOLUTE_FORM = /^https?:\/\/([a-z0-9.-]+|\[[0-9a-f:.]+\])(:\d{1,5})?(?=[/?]|$)/i;

export interface NormalizedTarget {
  /** Canonical path, lower-cased, without parameters or a trailing slash: used only to pick a route. */
  readonly matchPath: string;
  /** Canonical path with its original case, plus the query, sent upstream. */
  readonly forwardPath: string;
  /** The authority of an absolute-form target, which stands in for Host; null for the usual origin form. */
  readonly authority: string | null;
}

/**
 * The canonical target, or null when it cannot be routed safely (a fragment, an encoded separator,
 * an asterisk- or authority-form target): answered 400.
 */
export function normalizeTarget(url: string): NormalizedTarget | null {
  if (url.includes('#')) return null;
  if (url.charCodeAt(0) !== 0x2f) return absoluteForm(url);
  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  if (!NEEDS_WORK.test(rawPath)) return { matchPath: rawPath, forwardPath: url, authority: null };
  if (ENCODED_SEPARATOR.test(rawPath)) return null;
  const decoded = decodeUnreserved(rawPath).replace(/\\/g, '/');
  const forward: string[] = [];
  const match: string[] = [];
  for (const seg of decoded.split('/')) {
    resolve(forward, seg);
    const semi = seg.indexOf(';');
    resolve(match, semi === -1 ? seg : seg.slice(0, semi));
  }
  const trailing = decoded.endsWith('/') && forward.length > 0 ? '/' : '';
  const path = '/' + forward.join('/') + trailing;
  return {
    matchPath: ('/' + match.join('/')).toLowerCase(),
    forwardPath: q === -1 ? path : path + url.slice(q),
    authority: null,
  };
}

function resolve(out: string[], seg: string): void {
  if (seg === '' || seg === '.') return;
  if (seg === '..') out.pop();
  else out.push(seg);
}

function absoluteForm(url: string): NormalizedTarget | null {
  const m = ABSOLUTE_FORM.exec(url);
  if (m === null) return null;
  const rest = url.slice(m[0].length);
  const origin = rest === '' ? '/' : rest.charCodeAt(0) === 0x3f ? '/' + rest : rest;
  if (origin.charCodeAt(0) !== 0x2f) return null;
  const inner = normalizeTarget(origin);
  return inner && { ...inner, authority: m[1]! + (m[2] ?? '') };
}
