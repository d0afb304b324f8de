// Who may use the admin listener, and from where.
//
// Credentials: with admin.token set, /admin/* needs `Authorization: Bearer <token>` or the
// dashboard's session cookie. The dashboard takes the token once as ?token= and answers with that
// cookie, so the token leaves the address bar and page scripts never see it (HttpOnly). The cookie
// holds an issue time and an HMAC over it keyed by the token, never the token: it opens the admin
// API in this browser for SESSION_MAX_AGE_MS, and changing the token (a reload) ends every session.
//
// Cookies are scoped to a host, not a port: a browser sends this one to every port of the host,
// SameSite=Strict included (ports of one host are one site). Hence three more rules, because a page
// served from another port of the same host (the data plane's upstream, say) is same-site:
// - the data plane strips the cookie before forwarding upstream (stripAdminCookie);
// - a state-changing request from a browser must come from the admin's own origin (crossOrigin);
// - the Host must name this listener, so a DNS name an attacker controls cannot be rebound to it
//   to read the admin API as that name's "same origin" (hostAllowed).
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export const ADMIN_COOKIE = 'floodgate_admin';
/** How long a dashboard session lasts; the browser is then asked for ?token= again. */
export const SESSION_MAX_AGE_MS = 12 * 60 * 60 * 1000;
/**
 * The header the dashboard's script sends with every POST. A form cannot send it, and a page of
 * another origin could only after a CORS preflight, which the admin listener never grants.
 */
export const CSRF_HEADER = 'x-floodgate-admin';

const SESSION = /^v2\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/;

function mac(token: string, issuedAt: number): string {
  return createHmac('sha256', token).update(`floodgate admin session v2 ${issuedAt}`).digest('base64url');
}

function same(given: string, want: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The cookie value for a session of `token` issued at `issuedAt` (epoch ms). */
export function sessionValue(token: string, issuedAt: number): string {
  return `v2.${issuedAt}.${mac(token, issuedAt)}`;
}

/** The Set-Cookie header that logs a browser in. Path=/ so the page and /admin/* both receive it. */
export function sessionCookie(token: string, now: number): string {
  const maxAge = Math.floor(SESSION_MAX_AGE_MS / 1000);
  return `${ADMIN_COOKIE}=${sessionValue(token, now)}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict`;
}

/**
 * True when `value` was issued for `token` less than SESSION_MAX_AGE_MS ago. Max-Age alone would
 * trust the browser to forget; the issue time is under the HMAC, so the server decides. A session
 * "issued" in the future only exists after the clock stepped back, and is refused like a stale one.
 */
export function sessionValid(value: string, token: string, now: number): boolean {
  const m = SESSION.exec(value);
  if (!m) return false;
  const issuedAt = Number(m[1]);
  const age = now - issuedAt;
  return age >= 0 && age < SESSION_MAX_AGE_MS && same(m[2]!, mac(token, issuedAt));
}

/** Every value the Cookie header gives ADMIN_COOKIE (a browser may send more than one). */
function adminCookies(header: string): string[] {
  const values: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === ADMIN_COOKIE) values.push(part.slice(eq + 1).trim());
  }
  return values;
}

export function bearerMatches(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  return header.startsWith('Bearer ') && same(header.slice(7), token);
}

export function cookieMatches(req: IncomingMessage, token: string, now: number): boolean {
  const header = req.headers.cookie;
  return header !== undefined && adminCookies(header).some((v) => sessionValid(v, token, now));
}

/** How a request is let in: no token is set, or it carries the Bearer token, or a live session. */
export type AdminCredential = 'open' | 'bearer' | 'cookie';

export function adminCredential(
  req: IncomingMessage,
  token: string | null,
  now: number,
): AdminCredential | null {
  if (!token) return 'open';
  if (bearerMatches(req, token)) return 'bearer';
  if (cookieMatches(req, token, now)) return 'cookie';
  return null;
}

/** Constant-time comparison of a token given some other way (the dashboard's ?token=). */
export function tokenMatches(given: string, token: string): boolean {
  return same(given, token);
}

/**
 * The Cookie header without any ADMIN_COOKIE pair, or null when nothing else is left: what the data
 * plane forwards upstream, so a service behind the proxy never holds an admin session.
 */
export function stripAdminCookie(cookieHeader: string): string | null {
  const kept = cookieHeader
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part !== '' && part.slice(0, Math.max(0, part.indexOf('='))).trim() !== ADMIN_COOKIE);
  return kept.length === 0 ? null : kept.join('; ');
}

/** The hostname and port of a Host header in canonical form (IPv6 bracketed), or null if malformed. */
function parseHost(host: string): { hostname: string; host: string } | null {
  // Name or [IPv6], then an optional port: nothing else (no userinfo, no path) may ride along.
  if (!/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/.test(host)) return null;
  try {
    const url = new URL(`http://${host}`);
    return { hostname: url.hostname, host: url.host };
  } catch {
    return null;
  }
}

const bare = (hostname: string): string => hostname.replace(/^\[(.*)\]$/, '$1');

function isLoopback(ip: string): boolean {
  return ip === '::1' || /^(?:::ffff:)?127\./.test(ip);
}

/**
 * Whether a Host header names the admin listener bound at `listenAddress`. A name an attacker's DNS
 * could point here (DNS rebinding) is refused; IP literals and `localhost` cannot be rebound.
 * - bound to a wildcard (0.0.0.0, ::): any IP literal and localhost;
 * - bound to loopback: its own address, 127.0.0.1, [::1] and localhost;
 * - bound to another address: that address only.
 * The port is not compared: it adds nothing against rebinding, and a tunnel (kubectl port-forward,
 * docker -p 19090:9090) legitimately presents another one.
 */
export function hostAllowed(host: string | undefined, listenAddress: string): boolean {
  const parsed = host === undefined ? null : parseHost(host);
  if (!parsed) return false;
  const name = bare(parsed.hostname);
  const wildcard = listenAddress === '0.0.0.0' || listenAddress === '::';
  if (wildcard) return name === 'localhost' || isIP(name) !== 0;
  if (isLoopback(listenAddress) && (name === 'localhost' || name === '127.0.0.1' || name === '::1'))
    return true;
  // server.address() and the URL parser both give IPv6 in its compressed, lowercase form.
  return name === listenAddress;
}

/**
 * Why a state-changing request must be refused as coming from another origin's page, or null.
 * Browsers say where a request comes from (Sec-Fetch-Site, Origin); curl and scripts send neither
 * and pass. A page on another port of this host is "same-site", not "same-origin", and is refused.
 * `credential` is how the request authenticated: one riding on the session cookie must also carry
 * CSRF_HEADER, which covers browsers too old to send Sec-Fetch-Site or Origin.
 */
export function crossOrigin(req: IncomingMessage, credential: AdminCredential | null): string | null {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return `Cross-site request refused (Sec-Fetch-Site: ${site})`;
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const own = req.headers.host === undefined ? null : parseHost(req.headers.host);
    let from: string | null = null;
    try {
      from = new URL(origin).host;
    } catch {
      // "null" (a sandboxed or privacy-sensitive context) and other garbage: not our origin.
    }
    if (!own || from !== own.host) return 'Cross-origin request refused (Origin is not this admin listener)';
  }
  if (credential === 'cookie' && req.headers[CSRF_HEADER] !== '1') {
    return `A dashboard session needs the ${CSRF_HEADER}: 1 header on this request`;
  }
  return null;
}
