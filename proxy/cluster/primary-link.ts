// A worker's side of its channel to the primary: whatever the worker's requests need from the primary
// (store calls, probe admissions, call outcomes) is gathered for one event-loop turn and sent as one
// Batch, as the Redis store pipelines a turn's commands. Answers come back in order, one per batch.
import type { CallOutcome } from '../../core/breaker/circuit-breaker.js';
import type { Algorithm, Decision, WindowSpec } from '../ratelimit/store.js';
import type { Answers, Batch, OutcomeReport, StoreCall } from './messages.js';

interface Waiter<T> {
  resolve(value: T): void;
  reject(err: Error): void;
}

interface Sent {
  readonly calls: Waiter<Decision | null>[];
  readonly admits: Waiter<number | null>[];
}

export class PrimaryLink {
  private seq = 0;
  private nextSpec = 0;
  private readonly specIds = new WeakMap<readonly WindowSpec[], number>();
  private specs: [number, readonly WindowSpec[]][] = [];
  private calls: StoreCall[] = [];
  private callWaiters: Waiter<Decision | null>[] = [];
  private admits: string[] = [];
  private admitWaiters: Waiter<number | null>[] = [];
  private outcomes: OutcomeReport[] = [];
  private readonly sent = new Map<number, Sent>();
  private scheduled = false;
  private broken: Error | null = null;

  constructor(private readonly send: (batch: Batch) => void) {}

  /** A call on the primary's memory store; null when the primary could not make it. */
  store(
    op: StoreCall['op'],
    key: string,
    windows: readonly WindowSpec[],
    algorithm: Algorithm,
    cost: number,
  ) {
    return new Promise<Decision | null>((resolve, reject) => {
      if (this.broken) return reject(this.broken);
      this.calls.push({ op, key, spec: this.specOf(windows), algorithm, cost });
      this.callWaiters.push({ resolve, reject });
      this.schedule();
    });
  }

  /** Asks the primary's breaker `name` to admit a call: its ticket, or null when refused. */
  admit(name: string): Promise<number | null> {
    return new Promise<number | null>((resolve, reject) => {
      if (this.broken) return reject(this.broken);
      this.admits.push(name);
      this.admitWaiters.push({ resolve, reject });
      this.schedule();
    });
  }

  /** Tells the primary's breaker how a call it admitted (here or there) ended. */
  report(name: string, ticket: number, outcome: CallOutcome, durationMs: number): void {
    if (this.broken) return;
    this.outcomes.push([name, ticket, outcome, durationMs]);
    this.schedule();
  }

  receive(a: Answers): void {
    const sent = this.sent.get(a.seq);
    if (sent === undefined) return;
    this.sent.delete(a.seq);
    for (let i = 0; i < sent.calls.length; i++) sent.calls[i]!.resolve(a.decisions[i] ?? null);
    for (let i = 0; i < sent.admits.length; i++) sent.admits[i]!.resolve(a.admits[i] ?? null);
  }

  /** The primary is gone: every waiting call fails, and so does every later one. */
  fail(err: Error): void {
    this.broken = err;
    for (const s of this.sent.values()) for (const w of [...s.calls, ...s.admits]) w.reject(err);
    this.sent.clear();
    for (const w of [...this.callWaiters, ...this.admitWaiters]) w.reject(err);
    this.callWaiters = [];
    this.admitWaiters = [];
  }

  private specOf(windows: readonly WindowSpec[]): number {
    let id = this.specIds.get(windows);
    if (id === undefined) {
      id = this.nextSpec++;
      this.specIds.set(windows, id);
      this.specs.push([id, windows]);
    }
    return id;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate runs once the turn's I/O callbacks are done: every request parsed in this turn
    // has had its say by then.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    if (this.broken) return;
    const batch: Batch = {
      t: 'batch',
      seq: ++this.seq,
      specs: this.specs,
      calls: this.calls,
      admits: this.admits,
      outcomes: this.outcomes,
    };
    if (this.callWaiters.length > 0 || this.admitWaiters.length > 0)
      this.sent.set(batch.seq, { calls: this.callWaiters, admits: this.admitWaiters });
    this.specs = [];
    this.calls = [];
    this.callWaiters = [];
    this.admits = [];
    this.admitWaiters = [];
    this.outcomes = [];
    try {
      this.send(batch);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
