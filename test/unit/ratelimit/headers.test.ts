// The RateLimit headers and the 429 body, as exact strings.
import { describe, expect, it } from 'vitest';
import {
  limitHeaders,
  limitHeaderWriter,
  mostRestrictiveWindow,
  rateLimitPolicy,
  rejection,
} from '../../../proxy/ratelimit/headers.js';
import { compileRejection, DEFAULT_REJECTION } from '../../../proxy/ratelimit/rejection-template.js';
import type { Decision, WindowState } from '../../../proxy/ratelimit/store.js';

/** The body of a rejection on a route without a rejection setting. */
const defaultBody = compileRejection(DEFAULT_REJECTION, 'api').body;

const NOW = 1_700_000_000_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const WINDOWS = [
  { name: 'hourly', limit: 100, windowMs: HOUR },
  { name: 'daily', limit: 1_000, windowMs: DAY },
];

function state(name: string, limit: number, windowMs: number, over: Partial<WindowState> = {}): WindowState {
  return { name, limit, windowMs, remaining: limit, resetAt: NOW, retryAfterMs: 0, ...over };
}

function decision(allowed: boolean, windows: WindowState[]): Decision {
  return { allowed, windows, now: NOW };
}

describe('rate limit headers', () => {
  it('RateLimit-Policy lists every window with its quota and length in seconds', () => {
    expect(rateLimitPolicy(WINDOWS)).toBe('"hourly";q=100;w=3600, "daily";q=1000;w=86400');
    expect(rateLimitPolicy([{ name: 'burst', limit: 10, windowMs: 1_500 }])).toBe('"burst";q=10;w=2');
  });

  it('an allowed first request: every window in RateLimit, X-RateLimit-* for the most restrictive', () => {
    const d = decision(true, [
      state('hourly', 100, HOUR, { remaining: 99, resetAt: NOW + HOUR }),
      state('daily', 1_000, DAY, { remaining: 999, resetAt: NOW + DAY }),
    ]);
    expect(limitHeaders(rateLimitPolicy(WINDOWS), d)).toEqual({
      'ratelimit-policy': '"hourly";q=100;w=3600, "daily";q=1000;w=86400',
      ratelimit: '"hourly";r=99;t=3600, "daily";r=999;t=86400',
      'x-ratelimit-limit': '100',
      'x-ratelimit-remaining': '99',
      'x-ratelimit-reset': '1700003600',
    });
  });

  it('the most restrictive window has the fewest remaining', () => {
    const d = decision(true, [
      state('hourly', 100, HOUR, { remaining: 60, resetAt: NOW + 1_800_500 }),
      state('daily', 1_000, DAY, { remaining: 5, resetAt: NOW + 43_200_000 }),
    ]);
    const h = limitHeaders('p', d);
    expect(h.ratelimit).toBe('"hourly";r=60;t=1801, "daily";r=5;t=43200');
    expect([h['x-ratelimit-limit'], h['x-ratelimit-remaining'], h['x-ratelimit-reset']]).toEqual([
      '1000',
      '5',
      '1700043200',
    ]);
  });

  it('ties go to the shorter window, wherever it is listed', () => {
    const d = decision(true, [
      state('daily', 1_000, DAY, { remaining: 9 }),
      state('hourly', 100, HOUR, { remaining: 9 }),
      state('burst', 10, 60_000, { remaining: 9 }),
    ]);
    expect(mostRestrictiveWindow(d)).toBe(2);
    expect(limitHeaders('p', d)['x-ratelimit-limit']).toBe('10');
  });

  it('t is the time to reset from the decision’s own clock, never negative', () => {
    const d = decision(true, [state('hourly', 100, HOUR, { remaining: 100, resetAt: NOW })]);
    expect(limitHeaders('p', d).ratelimit).toBe('"hourly";r=100;t=0');
    const skewed = decision(true, [state('hourly', 100, HOUR, { remaining: 99, resetAt: NOW + HOUR })]);
    expect(limitHeaders('p', skewed).ratelimit).toBe('"hourly";r=99;t=3600');
    expect(limitHeaders('p', skewed, NOW + 60_000).ratelimit).toBe('"hourly";r=99;t=3540');
  });

  it('quotes names as structured-field strings', () => {
    expect(rateLimitPolicy([{ name: 'a"b\\c', limit: 1, windowMs: 1_000 }])).toBe('"a\\"b\\\\c";q=1;w=1');
  });
});

describe('429', () => {
  it('names the window that denied, with Retry-After in whole seconds', () => {
    const d = decision(false, [
      state('hourly', 100, HOUR, { remaining: 0, resetAt: NOW + 122_001, retryAfterMs: 122_001 }),
      state('daily', 1_000, DAY, { remaining: 900, resetAt: NOW + DAY }),
    ]);
    const r = rejection(d);
    expect(r).toEqual({ index: 0, limit: 100, window: 'hourly', retryAfter: 123 });
    expect(defaultBody(r)).toBe(
      '{"error":"Rate limit exceeded","limit":100,"window":"hourly","retry_after":123}',
    );
  });

  it('with several full windows, the one with the longest wait', () => {
    const d = decision(false, [
      state('hourly', 100, HOUR, { remaining: 0, retryAfterMs: 600_000 }),
      state('daily', 1_000, DAY, { remaining: 0, retryAfterMs: 7_200_000 }),
    ]);
    expect(rejection(d)).toMatchObject({ window: 'daily', limit: 1_000, retryAfter: 7_200 });
  });

  it('equal waits go to the shorter window', () => {
    const d = decision(false, [
      state('daily', 1_000, DAY, { remaining: 0, retryAfterMs: 5_000 }),
      state('hourly', 100, HOUR, { remaining: 0, retryAfterMs: 5_000 }),
    ]);
    expect(rejection(d).window).toBe('hourly');
  });

  it('Retry-After is at least 1 second', () => {
    const d = decision(false, [state('burst', 10, 1_000, { remaining: 0, retryAfterMs: 1 })]);
    expect(rejection(d).retryAfter).toBe(1);
  });

  it('escapes the window name in the body', () => {
    const d = decision(false, [state('say "hi"', 1, 1_000, { remaining: 0, retryAfterMs: 2_500 })]);
    expect(defaultBody(rejection(d))).toBe(
      '{"error":"Rate limit exceeded","limit":1,"window":"say \\"hi\\"","retry_after":3}',
    );
  });
});

describe('client_headers: which rate limit headers a route sends', () => {
  const d = decision(true, [
    state('hourly', 100, HOUR, { remaining: 99, resetAt: NOW + HOUR }),
    state('daily', 1_000, DAY, { remaining: 999, resetAt: NOW + DAY }),
  ]);
  const policy = rateLimitPolicy(WINDOWS);

  it('both (the default) is limitHeaders', () => {
    expect(limitHeaderWriter(policy, 'both')!(d)).toEqual(limitHeaders(policy, d));
  });

  it('ietf: RateLimit-Policy and RateLimit only', () => {
    expect(limitHeaderWriter(policy, 'ietf')!(d)).toEqual({
      'ratelimit-policy': '"hourly";q=100;w=3600, "daily";q=1000;w=86400',
      ratelimit: '"hourly";r=99;t=3600, "daily";r=999;t=86400',
    });
  });

  it('legacy: the X-RateLimit-* trio only', () => {
    expect(limitHeaderWriter(policy, 'legacy')!(d)).toEqual({
      'x-ratelimit-limit': '100',
      'x-ratelimit-remaining': '99',
      'x-ratelimit-reset': String(Math.ceil((NOW + HOUR) / 1000)),
    });
  });

  it('none: no writer at all', () => {
    expect(limitHeaderWriter(policy, 'none')).toBeNull();
  });
});
