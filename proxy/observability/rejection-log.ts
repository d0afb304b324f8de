// The "rate limit exceeded" log line, rate-limited itself: a client hammering a limit must not turn
// every 429 into a log line (50,000 rejections once wrote 12 MB in 3 s). Metrics stay exact; the
// log keeps one line per route, identity and window every `intervalMs`, whose `suppressed` field
// counts the rejections since that identity's previous line, and no more than `perSecond` lines in
// all, whose `unlogged` field counts the lines the budget dropped since the last one written.
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.js';

export interface Rejection {
  readonly route: string;
  /** The raw identity; only `hashId(identity)` is written. */
  readonly identity: string;
  readonly window: string;
  readonly limit: number;
  readonly retryAfter: number;
  readonly shadow: boolean;
}

export interface RejectionLogOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly hashId: (id: string) => string;
  readonly intervalMs?: number;
  readonly perSecond?: number;
  /** Identities remembered at once; past it the memory starts afresh (a few extra lines, no growth). */
  readonly maxTracked?: number;
}

interface Seen {
  at: number;
  suppressed: number;
}

export class RejectionLog {
  private readonly seen = new Map<string, Seen>();
  private budgetStart = Number.NEGATIVE_INFINITY;
  private budget = 0;
  private unlogged = 0;
  private readonly intervalMs: number;
  private readonly perSecond: number;
  private readonly maxTracked: number;

  constructor(private readonly o: RejectionLogOptions) {
    this.intervalMs = o.intervalMs ?? 10_000;
    this.perSecond = o.perSecond ?? 50;
    this.maxTracked = o.maxTracked ?? 10_000;
  }

  record(r: Rejection): void {
    const now = this.o.clock.now();
    const key = r.route + '\0' + r.window + '\0' + r.identity;
    const prior = this.seen.get(key);
    if (prior !== undefined && now - prior.at < this.intervalMs) {
      prior.suppressed++;
      return;
    }
    if (now - this.budgetStart >= 1_000) {
      this.budgetStart = now;
      this.budget = this.perSecond;
    }
    if (this.budget === 0) {
      this.unlogged++;
      return;
    }
    this.budget--;
    this.o.logger.warn(
      {
        route: r.route,
        identifier: this.o.hashId(r.identity),
        limit: r.limit,
        remaining: 0,
        window: r.window,
        retry_after: r.retryAfter,
        shadow: r.shadow,
        suppressed: prior?.suppressed ?? 0,
        unlogged: this.unlogged,
      },
      'rate limit exceeded',
    );
    this.unlogged = 0;
    if (prior !== undefined) {
      prior.at = now;
      prior.suppressed = 0;
      return;
    }
    if (this.seen.size >= this.maxTracked) this.seen.clear();
    this.seen.set(key, { at: now, suppressed: 0 });
  }
}
