// Who may use /admin/* when admin.token is set (DESIGN §2, §4): a request carrying
// `Authorization: Bearer <token>`, or a browser holding the dashboard's session cookie. The
// dashboard takes the token once as ?token= and answers with that cookie, so the token leaves the
// address bar and page scripts never see it (HttpOnly); SameSite=Strict keeps other sites' pages
// from making the browser use it.
//
// The cookie holds an HMAC of the token, not the token: it opens the admin API in this browser and
// nothing else, and changing the token in the policy (a reload) invalidates every cookie at once.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const ADMIN_COOKIE = 'floodgate_admin';

/** The cookie value a browser holds for `token`. */
export function sessionValue(token: string): string {
  return createHmac('sha256', token).update('floodgate admin session v1').digest('base64url');
}

/** The Set-Cookie header that logs a browser in. Path=/ so the page and /admin/* both receive it. */
export function sessionCookie(token: string): string {
  return `${ADMIN_COOKIE}=${sessionValue(token)}; Path=/; HttpOnly; SameSite=Strict`;
}

function same(given: string, want: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function bearerMatches(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  return header.startsWith('Bearer ') && same(header.slice(7), token);
}

export function cookieMatches(req: IncomingMessage, token: string): boolean {
  const header = req.headers.cookie;
  if (!header) return false;
  const want = sessionValue(token);
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === ADMIN_COOKIE && same(part.slice(eq + 1).trim(), want)) {
      return true;
    }
  }
  return false;
}

/** True when no token is set, or the request carries it (header) or the session cookie. */
export function adminAuthorized(req: IncomingMessage, token: string | null): boolean {
  return !token || bearerMatches(req, token) || cookieMatches(req, token);
}

/** Constant-time comparison of a token given some other way (the dashboard's ?token=). */
export function tokenMatches(given: string, token: string): boolean {
  return same(given, token);
}
