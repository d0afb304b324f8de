// What only the memory store has: its bounds (key cap with eviction that spares limited identities,
// expiry reclaim), its growable hit log, and how its state follows a changed window set. The shared
// contract is in test/conformance.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../core/clock.js';
import { MemoryRateLimitStore } from '../../../proxy/ratelimit/memory-store.js';
import type { WindowSpec } from '../../../proxy/ratelimit/store.js';

const MINUTE: readonly WindowSpec[] = [{ name: 'minute', limit: 5, windowMs: 60_000 }];

function setup(maxKeys = 100_000) {
  const clock = new ManualClock();
  const evictions = { open: 0, limited: 0 };
  const onEvict = (limited: boolean) => evictions[limited ? 'limited' : 'open']++;
  return { clock, evictions, store: new MemoryRateLimitStore({ clock, maxKeys, onEvict }) };
}

const remaining = (store: MemoryRateLimitStore, key: string, windows = MINUTE) =>
  store.peekSync(key, windows, 'sliding-log').windows.map((w) => w.remaining);

describe('MemoryRateLimitStore', () => {
  it('holds at most maxKeys keys, evicting the least recently used', () => {
    const { store } = setup(3);
    for (const k of ['a', 'b', 'c', 'd']) store.hitSync(k, MINUTE, 'sliding-log');
    expect(store.size).toBe(3);
    expect(remaining(store, 'a')).toEqual([5]); // evicted: starts afresh
    for (const k of ['b', 'c', 'd']) expect(remaining(store, k)).toEqual([4]);
  });

  it('a key that is hit moves to the back of the eviction order', () => {
    const { store } = setup(4);
    for (const k of ['a', 'b', 'c', 'd']) store.hitSync(k, MINUTE, 'sliding-log');
    store.hitSync('a', MINUTE, 'sliding-log'); // a is the oldest: touched, it moves to the back
    store.hitSync('e', MINUTE, 'sliding-log');
    expect(remaining(store, 'a')).toEqual([3]);
    expect(remaining(store, 'b')).toEqual([5]); // b was the least recently used
  });

  it('evicts under a flood of new keys while a hot key survives', () => {
    const { store } = setup(1_000);
    for (let i = 0; i < 50_000; i++) {
      store.hitSync(`flood-${i}`, MINUTE, 'sliding-counter');
      if (i % 100 === 0) store.hitSync('hot', MINUTE, 'sliding-counter');
    }
    expect(store.size).toBe(1_000);
    expect(store.peekSync('hot', MINUTE, 'sliding-counter').windows[0]!.remaining).toBe(0);
  });

  it('reclaims expired keys incrementally as new keys arrive', () => {
    const { clock, store } = setup();
    for (let i = 0; i < 10; i++) store.hitSync(`old-${i}`, MINUTE, 'sliding-log');
    for (let i = 0; i < 10; i++) store.hitSync(`counter-${i}`, MINUTE, 'sliding-counter');
    expect(store.size).toBe(20);
    // sliding-counter keys matter until their fixed window has rolled twice: at most 2 minutes.
    clock.advance(120_000);
    for (let i = 0; i < 20; i++) store.hitSync(`new-${i}`, MINUTE, 'sliding-log');
    expect(store.size).toBe(20);
    for (let i = 0; i < 10; i++) expect(remaining(store, `old-${i}`)).toEqual([5]);
  });

  it('does not reclaim a key before its longest window has passed', () => {
    const { clock, store } = setup();
    const windows = [
      { name: 'minute', limit: 5, windowMs: 60_000 },
      { name: 'hour', limit: 50, windowMs: 3_600_000 },
    ];
    store.hitSync('k', windows, 'sliding-log');
    clock.advance(3_599_999);
    for (let i = 0; i < 10; i++) store.hitSync(`new-${i}`, windows, 'sliding-log');
    expect(remaining(store, 'k', windows)).toEqual([5, 49]);
  });

  it('peek neither inserts keys nor grows the store', () => {
    const { store } = setup(2);
    for (let i = 0; i < 10; i++) store.peekSync(`p-${i}`, MINUTE, 'sliding-log');
    expect(store.size).toBe(0);
  });

  it('the hit log grows, wraps and serves two windows, matching a naive log', () => {
    const { clock, store } = setup();
    const windows = [
      { name: 'short', limit: 20, windowMs: 1_000 },
      { name: 'long', limit: 50, windowMs: 5_000 },
    ];
    const naive: number[] = [];
    let seed = 7;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    for (let step = 0; step < 5_000; step++) {
      clock.advance(Math.floor(random() * 60));
      const now = clock.now();
      const inShort = naive.filter((t) => t > now - 1_000);
      const inLong = naive.filter((t) => t > now - 5_000);
      const expected = inShort.length < 20 && inLong.length < 50;
      const d = store.hitSync('k', windows, 'sliding-log');
      expect(d.allowed).toBe(expected);
      if (expected) naive.push(now);
      const s = naive.filter((t) => t > now - 1_000);
      expect(d.windows[0]!.remaining).toBe(Math.max(0, 20 - s.length));
      expect(d.windows[0]!.resetAt).toBe(s.length > 0 ? s[0]! + 1_000 : now);
      if (s.length >= 20) expect(d.windows[0]!.retryAfterMs).toBe(s[s.length - 20]! + 1_000 - now);
    }
  });

  it('keeps state by window name across a changed window set (a policy reload)', () => {
    const { store } = setup();
    const before = [
      { name: 'hourly', limit: 10, windowMs: 3_600_000 },
      { name: 'daily', limit: 100, windowMs: 86_400_000 },
    ];
    for (let i = 0; i < 3; i++) {
      store.hitSync('log', before, 'sliding-log');
      store.hitSync('counter', before, 'sliding-counter');
    }
    const after = [
      { name: 'burst', limit: 5, windowMs: 60_000 },
      { name: 'daily', limit: 200, windowMs: 86_400_000 },
      { name: 'hourly', limit: 10, windowMs: 7_200_000 },
    ];
    // A log keeps its hits, true under any window: the new burst window sees the three recent ones too.
    // A counter keeps state by name (daily, under its new limit), but its fixed windows are aligned to
    // the length, so a changed length (hourly) or a new window (burst) starts over.
    expect(store.peekSync('log', after, 'sliding-log').windows.map((w) => w.remaining)).toEqual([2, 197, 7]);
    expect(store.peekSync('counter', after, 'sliding-counter').windows.map((w) => w.remaining)).toEqual([
      5, 197, 10,
    ]);
  });

  it('an exhausted identity stays limited through a flood of new identities', () => {
    const { store, evictions } = setup(100);
    for (const algorithm of ['sliding-log', 'sliding-counter'] as const) {
      const key = `exhausted-${algorithm}`;
      for (let i = 0; i < 5; i++) expect(store.hitSync(key, MINUTE, algorithm).allowed).toBe(true);
      expect(store.hitSync(key, MINUTE, algorithm).allowed).toBe(false);
      // A hundred times the cap in junk identities, each well under its limit.
      for (let i = 0; i < 10_000; i++) store.hitSync(`junk-${algorithm}-${i}`, MINUTE, algorithm);
      expect(store.size).toBe(100);
      expect(store.hitSync(key, MINUTE, algorithm).allowed).toBe(false);
    }
    expect(evictions.limited).toBe(0);
    expect(evictions.open).toBe(2 * 10_000 - 98);
  });

  it('an identity at its limit but not yet refused is spared too; one with room left is not', () => {
    const { store } = setup(3);
    for (let i = 0; i < 5; i++) store.hitSync('full', MINUTE, 'sliding-log'); // remaining 0
    for (let i = 0; i < 4; i++) store.hitSync('partial', MINUTE, 'sliding-log'); // remaining 1
    store.hitSync('new-1', MINUTE, 'sliding-log');
    store.hitSync('new-2', MINUTE, 'sliding-log'); // evicts partial, the oldest open key
    expect(remaining(store, 'full')).toEqual([0]);
    expect(remaining(store, 'partial')).toEqual([5]);
  });

  it('an identity that has room again (its window slid) rejoins the eviction order on its next hit', () => {
    const { clock, store, evictions } = setup(2);
    for (let i = 0; i < 5; i++) store.hitSync('k', MINUTE, 'sliding-log');
    clock.advance(60_000); // every hit left the window
    store.hitSync('k', MINUTE, 'sliding-log'); // 1 of 5: open again, and the most recently used
    store.hitSync('a', MINUTE, 'sliding-log');
    store.hitSync('b', MINUTE, 'sliding-log'); // evicts k, the least recently used
    expect(remaining(store, 'k')).toEqual([5]);
    expect(evictions).toEqual({ open: 1, limited: 0 });
  });

  it('only when every identity held is limited does the one limited longest ago go, and says so', () => {
    const { store, evictions } = setup(3);
    for (const k of ['l1', 'l2', 'l3']) for (let i = 0; i < 5; i++) store.hitSync(k, MINUTE, 'sliding-log');
    store.hitSync('newcomer', MINUTE, 'sliding-log');
    expect(evictions).toEqual({ open: 0, limited: 1 });
    expect(remaining(store, 'l1')).toEqual([5]);
    // The newcomer is open, so the next newcomer takes its place, not another limited identity.
    store.hitSync('newcomer-2', MINUTE, 'sliding-log');
    expect(evictions).toEqual({ open: 1, limited: 1 });
    expect([remaining(store, 'l2'), remaining(store, 'l3')]).toEqual([[0], [0]]);
  });

  it('reset forgets a key wherever it is queued', () => {
    const { store, evictions } = setup(2);
    for (let i = 0; i < 5; i++) store.hitSync('limited', MINUTE, 'sliding-log');
    store.hitSync('open', MINUTE, 'sliding-log');
    void store.reset('limited');
    void store.reset('open');
    expect(store.size).toBe(0);
    for (const k of ['a', 'b', 'c']) store.hitSync(k, MINUTE, 'sliding-log');
    expect(store.size).toBe(2);
    expect(evictions).toEqual({ open: 1, limited: 0 });
  });

  it('rejects a bad cap', () => {
    expect(() => new MemoryRateLimitStore({ maxKeys: 0 })).toThrow(RangeError);
  });
});
