// The rate limit headers (RateLimit, RateLimit-Policy, Retry-After) and the 429 answer, as pure functions of a Decision. The one value that
// depends only on the window set, RateLimit-Policy, is built once per route (rateLimitPolicy) and passed
// in, so the hot path only formats numbers. Which of the headers a route sends (its `client_headers`)
// is decided once per route too (limitHeaderWriter).
import type { Decision, WindowSpec, WindowState } from './store.js';

/** Which rate limit headers a route's answers carry: IETF, X-RateLimit-*, both (the default) or none. */
export type ClientHeaders = 'ietf' | 'legacy' | 'both' | 'none';

/** Lower-case names, as Node and HTTP/2 carry them; spread into writeHead. A type, not an interface,
 * so that it is assignable to Record<string, string>. */
export type LimitHeaders = {
  'ratelimit-policy': string;
  ratelimit: string;
  'x-ratelimit-limit': string;
  'x-ratelimit-remaining': string;
  'x-ratelimit-reset': string;
};

export interface Rejection {
  /** Index in decision.windows of the window that denied. */
  readonly index: number;
  readonly limit: number;
  readonly window: string;
  /** Whole seconds, ≥ 1: the Retry-After header and the body's retry_after. */
  readonly retryAfter: number;
}

/** The RateLimit-Policy value, `"hourly";q=100;w=3600, "daily";q=1000;w=86400`; once per window set. */
export function rateLimitPolicy(windows: readonly WindowSpec[]): string {
  return windows.map((w) => `${sfString(w.name)};q=${w.limit};w=${Math.ceil(w.windowMs / 1000)}`).join(', ');
}

/**
 * The headers every limited route's response carries (Retry-After is the caller's, from rejection(), on
 * a 429 only: a shadow-limited request passes without it). `nowMs` defaults to the decision's own time
 * (Redis server time for the Redis store), so `t` stays right on a proxy whose clock is skewed.
 */
export function limitHeaders(
  policy: string,
  decision: Decision,
  nowMs: number = decision.now ?? Date.now(),
): LimitHeaders {
  const m = decision.windows[mostRestrictiveWindow(decision)]!;
  return {
    'ratelimit-policy': policy,
    ratelimit: rateLimitItems(decision, nowMs),
    'x-ratelimit-limit': String(m.limit),
    'x-ratelimit-remaining': String(m.remaining),
    'x-ratelimit-reset': String(Math.ceil(m.resetAt / 1000)),
  };
}

/**
 * The function that writes a route's rate limit headers for a decision, in its `client_headers` mode:
 * `both` is limitHeaders; `ietf` only RateLimit-Policy and RateLimit; `legacy` only the X-RateLimit-*
 * trio; null for `none` (Kong's hide_client_headers).
 */
export function limitHeaderWriter(
  policy: string,
  mode: ClientHeaders,
): ((decision: Decision) => Record<string, string>) | null {
  switch (mode) {
    case 'both':
      return (d) => limitHeaders(policy, d);
    case 'ietf':
      return (d) => ({ 'ratelimit-policy': policy, ratelimit: rateLimitItems(d, d.now ?? Date.now()) });
    case 'legacy':
      return (d) => {
        const m = d.windows[mostRestrictiveWindow(d)]!;
        return {
          'x-ratelimit-limit': String(m.limit),
          'x-ratelimit-remaining': String(m.remaining),
          'x-ratelimit-reset': String(Math.ceil(m.resetAt / 1000)),
        };
      };
    case 'none':
      return null;
  }
}

/** The RateLimit value: every window, `"hourly";r=99;t=3600, …`. */
function rateLimitItems(decision: Decision, nowMs: number): string {
  const states = decision.windows;
  let items = '';
  for (let j = 0; j < states.length; j++) {
    const s = states[j]!;
    const t = s.resetAt > nowMs ? Math.ceil((s.resetAt - nowMs) / 1000) : 0;
    items += (j === 0 ? '' : ', ') + sfString(s.name) + ';r=' + s.remaining + ';t=' + t;
  }
  return items;
}

/**
 * Why a denied decision was denied: the window that stays full longest, since the request needs room in
 * all of them (ties: the shorter window, then the first).
 */
export function rejection(decision: Decision): Rejection {
  const states = decision.windows;
  let index = 0;
  for (let j = 1; j < states.length; j++) {
    const d = states[j]!.retryAfterMs - states[index]!.retryAfterMs;
    if (d > 0 || (d === 0 && states[j]!.windowMs < states[index]!.windowMs)) index = j;
  }
  const s = states[index]!;
  return { index, limit: s.limit, window: s.name, retryAfter: retryAfterSeconds(s) };
}

/** The window with the fewest remaining (ties: the shorter window, then the first): X-RateLimit-*. */
export function mostRestrictiveWindow(decision: Decision): number {
  const states = decision.windows;
  let best = 0;
  for (let j = 1; j < states.length; j++) {
    const d = states[j]!.remaining - states[best]!.remaining;
    if (d < 0 || (d === 0 && states[j]!.windowMs < states[best]!.windowMs)) best = j;
  }
  return best;
}

/** At least 1: "retry now" would only earn another 429. */
function retryAfterSeconds(s: WindowState): number {
  return s.retryAfterMs > 1000 ? Math.ceil(s.retryAfterMs / 1000) : 1;
}

/** An RFC 8941 sf-string. Names are printable ASCII (the limiter checks), so only `"` and `\` need escaping. */
function sfString(name: string): string {
  return '"' + (name.includes('"') || name.includes('\\') ? name.replace(/["\\]/g, '\\$&') : name) + '"';
}
