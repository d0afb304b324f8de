// The in-process RateLimitStore: counters for one process (the default store, and the proxy's fallback
// when Redis is unreachable). Its arithmetic is the same as lua/*.lua, so both stores decide alike; the
// differential test holds them to that.
//
// Bounded in two ways, with no timers:
// - Expiry: every key remembers when its counters become irrelevant (`expiresAt`). Windows roll lazily
//   on access, and each insertion of a new key steps an incremental sweep over two more keys,
//   deleting those that have expired.
// - A cap of `maxKeys` keys (policy: store.max_keys). Inserting one more evicts one, and which one is
//   what keeps a flood of new identities from buying anyone a fresh quota. Keys live in two queues,
//   each in least-recently-used order: `open` (the last decision left room for another request like
//   it) and `limited` (it left none: the identity is at or over its limit). The victim is the least
//   recently used open key; a limited key goes only when no key is open. Forgetting a limited identity would
//   hand it its whole quota back, which is exactly what a flood of junk identities is after, and each
//   junk identity is itself open, so the flood only ever evicts itself and the idle. Only once every key
//   held is limited (maxKeys identities that each spent a whole quota) does the one limited longest ago
//   go. An evicted open key starts afresh, which errs towards admitting; `onEvict` reports every
//   eviction (the proxy counts them in rate_limit_store_evictions_total), so a cap that is too small
//   for the traffic shows.
// Memory per key, measured with V8 (node 20): about 0.4 KB for sliding-counter, and for sliding-log
// about 0.4 KB plus 8 bytes per hit held (up to the largest limit: ~8 KB for 1000/day). So the default
// 100,000 keys cost about 40 MB with sliding-counter or small limits; size maxKeys with that product in
// mind, or pick sliding-counter for keys of high cardinality.
import { type Clock, systemClock } from '../../core/clock.js';
import {
  type Algorithm,
  checkCost,
  type Decision,
  type RateLimitStore,
  type WindowSpec,
  type WindowState,
} from './store.js';

export interface MemoryRateLimitStoreOptions {
  readonly clock?: Clock;
  /** Most keys held at once (default 100,000); past it one is evicted, as the header says. */
  readonly maxKeys?: number;
  /** Called on each eviction; `limited`: the evicted identity was at or over its limit. */
  readonly onEvict?: (limited: boolean) => void;
}

/**
 * The hits counted for one key, oldest first (epoch ms), in a ring that grows as needed. One log serves
 * every window: a hit counts in all of them or in none, so window j's hits are simply the newest
 * `count - skip[j]`. One push per hit, and about half the memory of a log per window. A request of cost
 * N is N hits with one time: the log stays a plain count, and still never outgrows the largest limit.
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

  /** Adds `n` hits at time `t`. */
  push(t: number, n: number): void {
    if (this.count + n > this.buf.length) {
      // Bounded: admission needs room in the longest window, so count stays within the largest limit.
      let size = this.buf.length * 2;
      while (size < this.count + n) size *= 2;
      const next = new Array<number>(size).fill(0);
      for (let i = 0; i < this.count; i++) next[i] = this.at(i);
      this.buf = next;
      this.head = 0;
    }
    for (let k = 0; k < n; k++) {
      const j = this.head + this.count;
      this.buf[j < this.buf.length ? j : j - this.buf.length] = t;
      this.count++;
    }
  }
}

interface Entry {
  readonly key: string;
  /** The window set the state below was laid out for; compared by identity on the hot path. */
  specs: readonly WindowSpec[];
  /** sliding-log. */
  log: HitLog | null;
  /** sliding-counter: [fixed-window index, current count, previous count] per window. */
  counters: Float64Array | null;
  /** Epoch ms after which no window of this key counts anything. */
  expiresAt: number;
  /** Epoch ms until which its last decision left it no room (at or over its limit). */
  limitedUntil: number;
  /** The queue that holds it (null for peek's stand-in for an unknown key), and its neighbours there. */
  queue: Queue | null;
  older: Entry | null;
  newer: Entry | null;
}

/** Entries, least recently used first, in a doubly linked list: every move is O(1), with no allocation. */
class Queue {
  oldest: Entry | null = null;
  newest: Entry | null = null;

  push(e: Entry): void {
    e.queue = this;
    e.older = this.newest;
    e.newer = null;
    if (this.newest === null) this.oldest = e;
    else this.newest.newer = e;
    this.newest = e;
  }

  remove(e: Entry): void {
    if (e.older === null) this.oldest = e.newer;
    else e.older.newer = e.newer;
    if (e.newer === null) this.newest = e.older;
    else e.newer.older = e.older;
    e.queue = e.older = e.newer = null;
  }

  clear(): void {
    this.oldest = this.newest = null;
  }
}

const LOG: Algorithm = 'sliding-log';
const SWEEP_STEP = 2;

export class MemoryRateLimitStore implements RateLimitStore {
  private readonly clock: Clock;
  private readonly maxKeys: number;
  private readonly onEvict: ((limited: boolean) => void) | null;
  private readonly entries = new Map<string, Entry>();
  private readonly open = new Queue();
  private readonly limited = new Queue();
  private sweep: MapIterator<[string, Entry]> | null = null;

  constructor({ clock = systemClock, maxKeys = 100_000, onEvict }: MemoryRateLimitStoreOptions = {}) {
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1)
      throw new RangeError(`maxKeys must be a positive integer`);
    this.clock = clock;
    this.maxKeys = maxKeys;
    this.onEvict = onEvict ?? null;
  }

  /** Keys held now (expired ones count until the sweep or an access reclaims them). */
  get size(): number {
    return this.entries.size;
  }

  hit(key: string, windows: readonly WindowSpec[], algorithm: Algorithm, cost = 1): Promise<Decision> {
    try {
      return Promise.resolve(this.hitSync(key, windows, algorithm, cost));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  peek(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Promise<Decision> {
    return Promise.resolve(this.peekSync(key, windows, algorithm));
  }

  /** `hit` without the promise, for callers on a synchronous path (the proxy's local fallback). */
  hitSync(key: string, windows: readonly WindowSpec[], algorithm: Algorithm, cost = 1): Decision {
    checkCost(cost);
    const now = this.clock.now();
    const entry = this.entries.get(key) ?? this.insert(key, windows, now);
    if (entry.specs !== windows) adapt(entry, windows);
    const decision =
      algorithm === LOG
        ? decideLog(entry, windows, now, cost, true)
        : decideCounter(entry, windows, now, cost, true);
    let retryAfterMs = 0;
    for (const w of decision.windows) if (w.retryAfterMs > retryAfterMs) retryAfterMs = w.retryAfterMs;
    entry.limitedUntil = now + retryAfterMs;
    // Used now: to the newest end of the queue its standing puts it in.
    const queue = retryAfterMs > 0 ? this.limited : this.open;
    if (queue.newest !== entry) {
      entry.queue!.remove(entry);
      queue.push(entry);
    }
    return decision;
  }

  /** `peek` without the promise. Never inserts a key, nor refreshes its place in the eviction order. */
  peekSync(key: string, windows: readonly WindowSpec[], algorithm: Algorithm): Decision {
    const now = this.clock.now();
    const entry = this.entries.get(key) ?? newEntry(key, windows);
    if (entry.specs !== windows) adapt(entry, windows);
    return algorithm === LOG
      ? decideLog(entry, windows, now, 1, false)
      : decideCounter(entry, windows, now, 1, false);
  }

  reset(key: string): Promise<void> {
    const entry = this.entries.get(key);
    if (entry !== undefined) this.delete(entry);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.entries.clear();
    this.open.clear();
    this.limited.clear();
    this.sweep = null;
    return Promise.resolve();
  }

  private insert(key: string, windows: readonly WindowSpec[], now: number): Entry {
    this.sweepExpired(now);
    if (this.entries.size >= this.maxKeys) {
      // The least recently used open key; a limited one only when none is open (see the header).
      const victim = this.open.oldest ?? this.limited.oldest!;
      this.delete(victim);
      this.onEvict?.(victim.limitedUntil > now);
    }
    const entry = newEntry(key, windows);
    this.entries.set(key, entry);
    this.open.push(entry);
    return entry;
  }

  private delete(entry: Entry): void {
    this.entries.delete(entry.key);
    entry.queue?.remove(entry);
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
      if (next.value[1].expiresAt <= now) this.delete(next.value[1]);
    }
  }
}

function newEntry(key: string, windows: readonly WindowSpec[]): Entry {
  return {
    key,
    specs: windows,
    log: null,
    counters: null,
    expiresAt: 0,
    limitedUntil: 0,
    queue: null,
    older: null,
    newer: null,
  };
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

function decideLog(
  entry: Entry,
  windows: readonly WindowSpec[],
  now: number,
  cost: number,
  count: boolean,
): Decision {
  let log = entry.log;
  if (log === null) {
    log = new HitLog(windows.length);
    if (count) entry.log = log;
  }
  let allowed = true;
  for (let j = 0; j < windows.length; j++) {
    const w = windows[j]!;
    if (log.slide(j, now - w.windowMs) + cost > w.limit) allowed = false;
  }
  log.drop();
  if (allowed && count) log.push(now, cost);
  let maxWindowMs = 0;
  const states = new Array<WindowState>(windows.length);
  for (let j = 0; j < windows.length; j++) {
    const w = windows[j]!;
    const first = log.skip[j]!;
    const n = log.count - first;
    // Short of room: the (n + cost - limit)-th oldest hit must leave before `cost` more fit (n may exceed
    // the limit after a lowered limit). A cost above the limit never fits.
    states[j] = {
      name: w.name,
      limit: w.limit,
      windowMs: w.windowMs,
      remaining: n < w.limit ? w.limit - n : 0,
      resetAt: n > 0 ? log.at(first) + w.windowMs : now,
      retryAfterMs:
        n + cost <= w.limit
          ? 0
          : cost > w.limit
            ? w.windowMs
            : log.at(first + n + cost - w.limit - 1) + w.windowMs - now,
    };
    if (w.windowMs > maxWindowMs) maxWindowMs = w.windowMs;
  }
  if (allowed && count && now + maxWindowMs > entry.expiresAt) entry.expiresAt = now + maxWindowMs;
  return { allowed, windows: states, now };
}

/**
 * sliding-counter (error bound: see redis-store.ts). Per window of W ms: the count of the current fixed
 * window [i·W, (i+1)·W) and of the previous one; the estimate at elapsed e = now - i·W is
 * prev·(W - e)/W + cur. Everything is scaled by W, which keeps the arithmetic in integers: exact while
 * limit·W < 2^53 (10^8 per day), and beyond that rounded to 53 bits: a relative error of a few 2^-53,
 * under one request for any limit below 10^15, against the estimate's own error of up to a whole
 * window's count. So no limit needs refusing for it. lua/sliding-counter.lua does the same double operations in the
 * same order (Lua numbers are IEEE doubles too), so both stores still decide alike.
 */
function decideCounter(
  entry: Entry,
  windows: readonly WindowSpec[],
  now: number,
  cost: number,
  count: boolean,
): Decision {
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
    if (c[o + 2]! * (W - (now - i * W)) + (c[o + 1]! + cost) * W > w.limit * W) allowed = false;
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
    if (allowed && count) c[o + 1]! += cost;
    const cur = c[o + 1]!;
    const prev = c[o + 2]!;
    const scaled = prev * (W - e) + cur * W;
    let retryAfterMs = 0;
    if (scaled + cost * W > L * W) {
      // Room for `cost` comes back either as the previous window's weight fades, or only after the next
      // roll; a cost above the limit never fits.
      retryAfterMs =
        cost > L
          ? W
          : cur + cost <= L
            ? W - Math.floor(((L - cur - cost) * W) / prev) - e
            : W - e + W - Math.floor(((L - cost) * W) / cur);
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
