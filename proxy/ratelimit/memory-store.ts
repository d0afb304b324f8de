// The in-process RateLimitStore: counters for one process (the default store, and the proxy's fallback
// when Redis is unreachable). Its arithmetic is the same as lua/*.lua, so both stores decide alike; the
// differential test holds them to that.
//
// Bounded in two ways, with no timers:
// - Expiry: every key remembers when its counters become irrelevant (`expiresAt`). Windows roll lazily
//   on access, and each insertion of a new key steps an incremental sweep over two more keys,
//   deleting those that have expired.
// - A cap of `maxKeys` keys. Inserting one more evicts the least recently used key, approximately: the
//   Map's insertion order is the LRU order, and a key that is hit is moved to the back only when it has
//   drifted into the older half (so hot keys cost no Map churn). A key hit within the last maxKeys/2
//   insertions is never the victim. An evicted key starts afresh, which errs towards admitting.
// Per key, sliding-counter holds 3 numbers per window; sliding-log holds up to the largest limit's
// timestamps (8 bytes each: ~8 KB for 1000/day), so size maxKeys with that product in mind, or pick
// sliding-counter for keys of high cardinality.
import { type Clock, systemClock } from '../core/clock.js';
import type { Algorithm, Decision, RateLimitStore, WindowSpec, WindowState } from './store.js';

export interface MemoryRateLimitStoreOptions {
  readonly clock?: Clock;
  /** Most keys held at once; the least recently used is evicted beyond it. */
  readonly maxKeys?: number;
}

/**
 * The hits counted for one key, oldest first (epoch ms), in a ring that grows as needed. One log serves
 * every window: a hit counts in all of them or in none, so window j's hits are simply the newest
 * `count - skip[j]`. One push per hit, and about half the memory of a log per window.
 */
class HitLog {
  buf: number[];
  head = 0;
  count = 0;
  /** Per window: how many of the oldest hits have left it. */
  skip: number[];

  constructor(windows: number) {
    this.buf = new Array<number>(8).fill(0);
    this.skip = new Array<number>(windows).fill(0);
  }

  /** The i-th oldest hit. */
  at(i: number): number {
    const j = this.head + i;
    return this.buf[j < this.buf.length ? j : j - this.buf.length]!;
  }

  /** Moves window j's start past hits at or before `cutoff`: a window of W ms at t holds (t - W, t]. */
  slide(j: number, cutoff: number): number {
    let k = this.skip[j]!;
    while (k < this.count && this.at(k) <= cutoff) k++;
    this.skip[j] = k;
    return this.count - k;
  }

  /** Forgets the hits that every window has left. */
  drop(): void {
    let d = this.count;
    for (const k of this.skip) if (k < d) d = k;
    if (d === 0) return;
    this.head = (this.head + d) % this.buf.length;
    this.count -= d;
    for (let j = 0; j < this.skip.length; j++) this.skip[j]! -= d;
  }

  push(t: number): void {
    if (this.count === this.buf.length) {
      // Bounded: admission needs room in the longest window, so count stays within the largest limit.
      const next = new Array<number>(this.buf.length * 2).fill(0);
      for (let i = 0; i < this.count; i++) next[i] = this.at(i);
      this.buf = next;
      this.head = 0;
    }
    const j = this.head + this.count;
    this.buf[j < this.buf.length ? j : j - this.buf.length] = t;
    this.count++;
  }
}

interface Entry {
  /** The window set the state below was laid out for; compared by identity on the hot path. */
  specs: readonly WindowSpec[];
  /** sliding-log. */
  log: HitLog | null;
  /** sliding-counter: [fixed-window index, current count, previous count] per window. */
  counters: Float64Array | null;
  /** Epoch ms after which no window of this key counts anything. */
  expiresAt: number;
  /** Insertion sequence number: the position in the Map's (LRU) order. */
  stamp: number;
}

const LOG: Algorithm = 'sliding-log';
const SWEEP_STEP = 2;

export class MemoryRateLimitStore implements RateLimitStore {
  private readonly clock: Clock;
  private readonly maxKeys: number;
  private readonly touchDistance: number;
  private readonly entries = new Map<string, Entry>();
  private sweep: MapIterator<[string, Entry]> | null = null;
  private stamp = 0;

  constructor({ clock = systemClock, maxKeys = 100_000 }: MemoryRateLimitStoreOptions = {}) {
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1)
      throw new RangeError(`maxKeys must be a positive integer`);
    this.clock = clock;
    this.maxKeys = maxKeys;
    this.touchDistance = Math.max(1, maxKeys >>> 1);
  }

  /** Keys held now (expired ones count until the sweep or an access reclaims them). */
  get size(): number {
    return this.entries.size;
  }

  hit(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision> {
    return Promise.resolve(this.hitSync(key, windows, algorithm));
  }

  peek(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision> {
    return Promise.resolve(this.peekSync(key, windows, algorithm));
  }

  /** `hit` without the promise, for callers on a synchronous path (the proxy's local fallback). */
  hitSync(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Decision {
    const now = this.clock.now();
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = this.insert(key, windows, now);
    } else if (this.stamp - entry.stamp > this.touchDistance) {
      this.entries.delete(key);
      this.entries.set(key, entry);
      entry.stamp = ++this.stamp;
    }
    if (entry.specs !== windows) adapt(entry, windows);
    return algorithm === LOG
      ? decideLog(entry, windows, now, true)
      : decideCounter(entry, windows, now, true);
  }

  /** `peek` without the promise. Never inserts a key, nor refreshes its place in the LRU order. */
  peekSync(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Decision {
    const now = this.clock.now();
    const entry = this.entries.get(key) ?? newEntry(windows, 0);
    if (entry.specs !== windows) adapt(entry, windows);
    return algorithm === LOG
      ? decideLog(entry, windows, now, false)
      : decideCounter(entry, windows, now, false);
  }

  reset(key: string): Promise<void> {
    this.entries.delete(key);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.entries.clear();
    this.sweep = null;
    return Promise.resolve();
  }

  private insert(key: string, windows: readonly WindowSpec[], now: number): Entry {
    this.sweepExpired(now);
    if (this.entries.size >= this.maxKeys) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    const entry = newEntry(windows, ++this.stamp);
    this.entries.set(key, entry);
    return entry;
  }

  /** Steps a long-lived iterator over a few keys; Map iterators stay valid while entries come and go. */
  private sweepExpired(now: number): void {
    for (let i = 0; i < SWEEP_STEP; i++) {
      this.sweep ??= this.entries.entries();
      const next = this.sweep.next();
      if (next.done) {
        this.sweep = null;
        return;
      }
      if (next.value[1].expiresAt <= now) this.entries.delete(next.value[0]);
    }
  }
}

function newEntry(windows: readonly WindowSpec[], stamp: number): Entry {
  return { specs: windows, log: null, counters: null, expiresAt: 0, stamp };
}

/**
 * Re-lays the state out for a different window set (a policy reload). A log keeps its hits, which stay
 * true under any windows (a new window sees the hits still within its length). A counter's state follows
 * the window's name, and survives only when the length is unchanged too: its fixed windows are aligned
 * to the length.
 */
function adapt(entry: Entry, windows: readonly WindowSpec[]): void {
  const old = entry.specs;
  const index = (name: string) => old.findIndex((w) => w.name === name);
  if (entry.log !== null) entry.log.skip = new Array<number>(windows.length).fill(0);
  if (entry.counters !== null) {
    const prev = entry.counters;
    const next = new Float64Array(windows.length * 3);
    windows.forEach((w, j) => {
      const i = index(w.name);
      if (i >= 0 && old[i]!.windowMs === w.windowMs) next.set(prev.subarray(i * 3, i * 3 + 3), j * 3);
    });
    entry.counters = next;
  }
  entry.specs = windows;
}

function decideLog(entry: Entry, windows: readonly WindowSpec[], now: number, count: boolean): Decision {
  let log = entry.log;
  if (log === null) {
    log = new HitLog(windows.length);
    if (count) entry.log = log;
  }
  let allowed = true;
  for (let j = 0; j < windows.length; j++) {
    const w = windows[j]!;
    if (log.slide(j, now - w.windowMs) >= w.limit) allowed = false;
  }
  log.drop();
  if (allowed && count) log.push(now);
  let maxWindowMs = 0;
  const states = new Array<WindowState>(windows.length);
  for (let j = 0; j < windows.length; j++) {
    const w = windows[j]!;
    const first = log.skip[j]!;
    const n = log.count - first;
    // Full: the (n - limit)-th oldest hit must leave before one more fits (n > limit after a lowered limit).
    states[j] = {
      name: w.name,
      limit: w.limit,
      windowMs: w.windowMs,
      remaining: n < w.limit ? w.limit - n : 0,
      resetAt: n > 0 ? log.at(first) + w.windowMs : now,
      retryAfterMs: n < w.limit ? 0 : log.at(first + n - w.limit) + w.windowMs - now,
    };
    if (w.windowMs > maxWindowMs) maxWindowMs = w.windowMs;
  }
  if (allowed && count && now + maxWindowMs > entry.expiresAt) entry.expiresAt = now + maxWindowMs;
  return { allowed, windows: states, now };
}

/**
 * sliding-counter (error bound: see redis-store.ts). Per window of W ms: the count of the current fixed window [i·W, (i+1)·W) and of the
 * previous one; the estimate at elapsed e = now - i·W is prev·(W - e)/W + cur. Everything is scaled by W
 * to stay in exact integer arithmetic (doubles are exact below 2^53: limit·W < 2^53, e.g. 10^8 per day).
 */
function decideCounter(entry: Entry, windows: readonly WindowSpec[], now: number, count: boolean): Decision {
  let c = entry.counters;
  if (c === null) {
    c = new Float64Array(windows.length * 3);
    if (count) entry.counters = c;
  }
  let allowed = true;
  for (let j = 0; j < windows.length; j++) {
    const w = windows[j]!;
    const W = w.windowMs;
    const i = Math.floor(now / W);
    const o = j * 3;
    const idx = c[o]!;
    if (idx !== i) {
      // Roll lazily: the current window becomes the previous one, or both are out of reach.
      c[o + 2] = idx === i - 1 ? c[o + 1]! : 0;
      c[o + 1] = 0;
      c[o] = i;
    }
    if (c[o + 2]! * (W - (now - i * W)) + (c[o + 1]! + 1) * W > w.limit * W) allowed = false;
  }
  let expiresAt = entry.expiresAt;
  const states = new Array<WindowState>(windows.length);
  for (let j = 0; j < windows.length; j++) {
    const w = windows[j]!;
    const W = w.windowMs;
    const L = w.limit;
    const o = j * 3;
    const i = c[o]!;
    const e = now - i * W;
    if (allowed && count) c[o + 1]!++;
    const cur = c[o + 1]!;
    const prev = c[o + 2]!;
    const scaled = prev * (W - e) + cur * W;
    let retryAfterMs = 0;
    if (scaled + W > L * W) {
      // Room comes back either as the previous window's weight fades, or only after the next roll.
      retryAfterMs =
        cur + 1 <= L
          ? W - Math.floor(((L - cur - 1) * W) / prev) - e
          : W - e + W - Math.floor(((L - 1) * W) / cur);
    }
    states[j] = {
      name: w.name,
      limit: L,
      windowMs: W,
      remaining: scaled < L * W ? Math.floor((L * W - scaled) / W) : 0,
      resetAt: cur > 0 ? (i + 2) * W : prev > 0 ? (i + 1) * W : now,
      retryAfterMs,
    };
    if (allowed && count && (i + 2) * W > expiresAt) expiresAt = (i + 2) * W;
  }
  entry.expiresAt = expiresAt;
  return { allowed, windows: states, now };
}
