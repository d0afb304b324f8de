// The sliding-counter error bound, stated in redis-store.ts and held here (the differential test shows
// the Lua script computes exactly what the memory store does):
// - each fixed window admits at most `limit`;
// - the estimate differs from the exact sliding count by less than the previous fixed window's count;
// - so any span of W ms admits at most 2·limit − 1 (admitting `limit` in a fixed window needs the previous
//   one's weight at zero), reached only when a window's hits bunch at its end;
// - under evenly spread traffic it is exact.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../core/clock.js';
import { MemoryRateLimitStore } from '../../../proxy/ratelimit/memory-store.js';

const W = 10_000;
const L = 100;
const WINDOWS = [{ name: 'w', limit: L, windowMs: W }];

/** Most admitted hits in any span (t - W, t]. */
function maxInAnyWindow(admitted: readonly number[]): number {
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < admitted.length; hi++) {
    while (admitted[lo]! <= admitted[hi]! - W) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

function run(arrivals: readonly number[]) {
  const clock = new ManualClock(0);
  const store = new MemoryRateLimitStore({ clock });
  const admitted: number[] = [];
  for (const t of arrivals) {
    clock.set(t);
    const before = store.peekSync('k', WINDOWS, 'sliding-counter').windows[0]!;
    const d = store.hitSync('k', WINDOWS, 'sliding-counter');
    // The estimate before this hit, against the exact count and the previous fixed window's count.
    const i = Math.floor(t / W);
    const exact = admitted.filter((a) => a > t - W).length;
    const prev = admitted.filter((a) => Math.floor(a / W) === i - 1).length;
    const estimateAtMost = L - before.remaining; // remaining = floor(L - estimate), when positive
    if (before.remaining > 0) {
      expect(estimateAtMost - 1).toBeLessThan(exact + prev);
      expect(estimateAtMost).toBeGreaterThanOrEqual(exact - prev);
    }
    if (d.allowed) admitted.push(t);
  }
  const perFixedWindow = new Map<number, number>();
  for (const a of admitted)
    perFixedWindow.set(Math.floor(a / W), (perFixedWindow.get(Math.floor(a / W)) ?? 0) + 1);
  return { admitted, maxSliding: maxInAnyWindow(admitted), maxFixed: Math.max(...perFixedWindow.values()) };
}

describe('sliding-counter error bound', () => {
  it('worst case: a window full at its very end lets the next admit almost limit more within W', () => {
    const arrivals: number[] = [];
    for (let i = 0; i < L; i++) arrivals.push(2 * W - 1); // all at the last ms of fixed window 1
    for (let t = 2 * W; t < 3 * W; t++) arrivals.push(t); // then one attempt every ms
    const { maxSliding, maxFixed } = run(arrivals);
    expect(maxFixed).toBe(L);
    expect(maxSliding).toBe(2 * L - 1);
  });

  it('random bursty traffic never exceeds limit per fixed window nor 2·limit − 1 per sliding window', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const arrivals: number[] = [];
    let t = 0;
    while (arrivals.length < 20_000) {
      t += random() < 0.7 ? 0 : Math.floor(random() * 400);
      const burst = random() < 0.05 ? 50 : 1;
      for (let b = 0; b < burst; b++) arrivals.push(t);
    }
    const { maxSliding, maxFixed } = run(arrivals);
    expect(maxFixed).toBeLessThanOrEqual(L);
    expect(maxSliding).toBeLessThan(2 * L);
  });

  it('evenly spread traffic at twice the limit is admitted exactly at the limit', () => {
    const arrivals: number[] = [];
    for (let t = 0; t < 20 * W; t += W / (2 * L)) arrivals.push(t);
    const { admitted, maxSliding } = run(arrivals);
    expect(maxSliding).toBe(L);
    // Over 20 windows, about limit per window got through.
    expect(admitted.length).toBeGreaterThan(19 * L);
  });
});
