// The limiter's own duties: validating windows, keying identities (hashed, never raw), and the API's
// units (seconds, epoch seconds). Counting itself is the stores' and tested in test/conformance.
import { describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../../core/clock.js';
import { RateLimiter, validateWindows } from '../../../proxy/ratelimit/limiter.js';
import { MemoryRateLimitStore } from '../../../proxy/ratelimit/memory-store.js';
import type { WindowSpec } from '../../../proxy/ratelimit/store.js';

const HOURLY = { name: 'hourly', limit: 2, windowMs: 3_600_000 };

function limiter(options: { windows?: WindowSpec[]; scope?: string; secret?: string } = {}) {
  const clock = new ManualClock(1_700_000_000_000);
  const store = new MemoryRateLimitStore({ clock });
  return { clock, store, l: new RateLimiter({ store, windows: options.windows ?? [HOURLY], ...options }) };
}

describe('validateWindows', () => {
  it.each<[string, unknown]>([
    ['no windows', []],
    ['a duplicate name', [HOURLY, { ...HOURLY, windowMs: 60_000 }]],
    ['an empty name', [{ ...HOURLY, name: '' }]],
    ['a non-ASCII name', [{ ...HOURLY, name: 'stündlich' }]],
    ['a zero limit', [{ ...HOURLY, limit: 0 }]],
    ['a fractional limit', [{ ...HOURLY, limit: 1.5 }]],
    ['a negative length', [{ ...HOURLY, windowMs: -1 }]],
    ['a fractional length', [{ ...HOURLY, windowMs: 0.5 }]],
  ])('rejects %s', (_, windows) => {
    expect(() => validateWindows(windows as WindowSpec[])).toThrow();
  });

  it('accepts any safe-integer limit and length: sliding-counter needs no product below 2^53', () => {
    // A billion a day (limit × length 8.64e16): `floodgate validate` accepted it, and start-up threw.
    const windows = [
      { name: 'hourly', limit: 10_000_000, windowMs: 3_600_000 },
      { name: 'daily', limit: 1_000_000_000, windowMs: 86_400_000 },
    ];
    expect(validateWindows(windows)).toEqual(windows);
    const store = new MemoryRateLimitStore();
    const l = new RateLimiter({ store, windows, algorithm: 'sliding-counter' });
    return expect(l.check('a')).resolves.toMatchObject({
      allowed: true,
      windows: [{ remaining: 9_999_999 }, { remaining: 999_999_999 }],
    });
  });

  it('returns a frozen copy', () => {
    const input = [{ ...HOURLY }];
    const out = validateWindows(input);
    expect(out).toEqual(input);
    expect(out).not.toBe(input);
    expect(Object.isFrozen(out)).toBe(true);
    expect(Object.isFrozen(out[0])).toBe(true);
  });

  it('the constructor validates too, and knows its algorithms', () => {
    const store = new MemoryRateLimitStore();
    expect(() => new RateLimiter({ store, windows: [] })).toThrow(RangeError);
    expect(() => new RateLimiter({ store, windows: [HOURLY], algorithm: 'fixed' as never })).toThrow(
      TypeError,
    );
  });
});

describe('RateLimiter keys', () => {
  it('are scope, ":", then 16 base64url characters of a hash: never the raw identity', () => {
    const { l } = limiter({ scope: 'transcribe' });
    const key = l.keyFor('sk_live_secret');
    expect(key).toMatch(/^transcribe:[A-Za-z0-9_-]{16}$/);
    expect(key).not.toContain('sk_live_secret');
    expect(l.keyFor('sk_live_secret')).toBe(key);
    expect(l.keyFor('sk_live_secreT')).not.toBe(key);
  });

  it('are the hash alone without a scope', () => {
    expect(limiter().l.keyFor('1.2.3.4')).toMatch(/^[A-Za-z0-9_-]{16}$/);
  });

  it('agree across limiters with the same scope, and differ with a secret', () => {
    const a = limiter({ scope: 'r' }).l.keyFor('1.2.3.4');
    expect(limiter({ scope: 'r' }).l.keyFor('1.2.3.4')).toBe(a);
    const keyed = limiter({ scope: 'r', secret: 's3cret' }).l.keyFor('1.2.3.4');
    expect(keyed).toMatch(/^r:[A-Za-z0-9_-]{16}$/);
    expect(keyed).not.toBe(a);
    expect(limiter({ scope: 'r', secret: 's3cret' }).l.keyFor('1.2.3.4')).toBe(keyed);
  });

  it('stay right past the key cache (10,000 identities)', () => {
    const { l } = limiter();
    const first = l.keyFor('id-0');
    for (let i = 1; i < 12_000; i++) l.keyFor(`id-${i}`);
    expect(l.keyFor('id-0')).toBe(first);
  });

  it('reach the store hashed', async () => {
    const { l, store } = limiter({ scope: 's' });
    const hit = vi.spyOn(store, 'hit');
    const reset = vi.spyOn(store, 'reset');
    await l.check('raw-id');
    await l.check('raw-id', 7);
    await l.reset('raw-id');
    expect(hit).toHaveBeenNthCalledWith(1, l.keyFor('raw-id'), l.windows, 'sliding-log', 1);
    expect(hit).toHaveBeenNthCalledWith(2, l.keyFor('raw-id'), l.windows, 'sliding-log', 7);
    expect(reset).toHaveBeenCalledWith(l.keyFor('raw-id'));
  });
});

describe('RateLimiter API', () => {
  it('isAllowed, getRetryAfter in whole seconds rounded up, 0 while allowed', async () => {
    const { l, clock } = limiter();
    expect(await l.getRetryAfter('x')).toBe(0);
    expect(await l.isAllowed('x')).toBe(true);
    expect(await l.getRetryAfter('x')).toBe(0);
    clock.advance(1_500);
    expect(await l.isAllowed('x')).toBe(true);
    expect(await l.isAllowed('x')).toBe(false);
    // The first hit leaves 3,600,000 - 1,500 ms from now: 3598.5 s, rounded up.
    expect(await l.getRetryAfter('x')).toBe(3_599);
  });

  it('getLimitInfo: the /admin/limits shape, in epoch seconds, without consuming', async () => {
    const { l, clock } = limiter({
      windows: [HOURLY, { name: 'daily', limit: 10, windowMs: 86_400_000 }],
    });
    await l.check('x');
    clock.advance(500);
    await l.check('x');
    const info = await l.getLimitInfo('x');
    expect(info).toEqual({
      windows: [
        { name: 'hourly', limit: 2, remaining: 0, reset_at: 1_700_003_600, retry_after: 3_600 },
        { name: 'daily', limit: 10, remaining: 8, reset_at: 1_700_086_400, retry_after: 0 },
      ],
    });
    expect(await l.getLimitInfo('x')).toEqual(info);
  });

  it('reset lets the identity start over', async () => {
    const { l } = limiter();
    await l.check('x');
    await l.check('x');
    await l.reset('x');
    expect((await l.check('x')).windows[0]!.remaining).toBe(1);
  });
});
