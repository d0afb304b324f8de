// The path that routing sees. Limits must not be skipped by spelling a path differently
// (/a/../transcribe, //transcribe, /%74ranscribe, /Transcribe), so matching runs on a
// canonical form and the same canonical path is what the upstream receives.

const NEEDS_WORK = /%|\/\/|\/\.|[A-Z]|\\/;

// Unreserved characters (RFC 3986 §2.3) may be decoded without changing meaning; anything
// else stays encoded.
const UNRESERVED = /%(4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2D|2E|5F|7E)/gi;

// An encoded slash or backslash is a separator to an upstream that decodes before it splits the
// path, and plain text to one that does not: /open/..%2Flimited is /limited to the first. Routing
// cannot know which reading the upstream takes, so such a path is refused rather than guessed at
// (Apache's AllowEncodedSlashes Off does the same).
const ENCODED_SEPARATOR = /%(2F|5C)/i;

export interface NormalizedTarget {
  /** Canonical path, lower-cased, used only to pick a route. */
  readonly matchPath: string;
  /** Canonical path with its original case, plus the query, sent upstream. */
  readonly forwardPath: string;
}

/** The canonical target, or null when the path holds an encoded separator (answered 400). */
export function normalizeTarget(url: string): NormalizedTarget | null {
  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  if (!NEEDS_WORK.test(rawPath)) return { matchPath: rawPath, forwardPath: url };
  if (ENCODED_SEPARATOR.test(rawPath)) return null;
  const decoded = rawPath
    .replace(UNRESERVED, (m) => String.fromCharCode(Number.parseInt(m.slice(1), 16)))
    .replace(/\\/g, '/');
  const out: string[] = [];
  for (const seg of decoded.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  const trailing = decoded.endsWith('/') && out.length > 0 ? '/' : '';
  const path = '/' + out.join('/') + trailing;
  return { matchPath: path.toLowerCase(), forwardPath: q === -1 ? path : path + url.slice(q) };
}
