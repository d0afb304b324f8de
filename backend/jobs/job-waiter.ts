// Waiting for jobs to end, for requests that answer only with the transcript (the OpenAI-style
// API). The job runs in whatever worker takes it, in this process or another, so the end is read
// from the job store: one poller for every waiting request, one pipelined round trip per tick
// however many wait, and no timer at all while nobody waits. Waiting never touches the job:
// a request that gives up (timeout, client gone, shutdown) leaves it to run and be fetched later.
import type { JobStatus, JobStore } from './job-store.js';

/** How a wait ended: the job completed or failed, was deleted, or the request stopped waiting. */
export type WaitOutcome =
  | { kind: 'ended'; status: JobStatus }
  | { kind: 'gone' }
  | { kind: 'timeout' }
  | { kind: 'aborted' }
  | { kind: 'closed' };

export interface JobWaiterOptions {
  store: Pick<JobStore, 'statuses'>;
  /** Between two reads of the waited jobs' statuses; default 200 ms. */
  pollMs?: number;
  now?: () => number;
  /** Told when a read fails; the waiters keep waiting and the next tick reads again. */
  onError?: (error: unknown) => void;
}

interface Waiter {
  id: string;
  deadline: number;
  settle(outcome: WaitOutcome): void;
}

export class JobWaiter {
  private readonly waiters = new Set<Waiter>();
  private readonly pollMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private closed = false;

  constructor(private readonly o: JobWaiterOptions) {
    this.pollMs = o.pollMs ?? 200;
    this.now = o.now ?? Date.now;
  }

  /** Requests waiting now. */
  get size(): number {
    return this.waiters.size;
  }

  /** True while a poll is scheduled or running; false whenever nobody waits. */
  get active(): boolean {
    return this.timer !== null || this.polling;
  }

  /**
   * Resolves when job `id` has completed or failed, is gone, `timeoutMs` has passed (to within a
   * tick), `signal` aborts, or the waiter closes. Never rejects.
   */
  wait(id: string, { timeoutMs, signal }: { timeoutMs: number; signal?: AbortSignal }): Promise<WaitOutcome> {
    if (this.closed) return Promise.resolve({ kind: 'closed' });
    if (signal?.aborted) return Promise.resolve({ kind: 'aborted' });
    return new Promise((resolve) => {
      const onAbort = (): void => waiter.settle({ kind: 'aborted' });
      const waiter: Waiter = {
        id,
        deadline: this.now() + timeoutMs,
        settle: (outcome) => {
          if (!this.waiters.delete(waiter)) return;
          signal?.removeEventListener('abort', onAbort);
          if (this.waiters.size === 0) this.stop();
          resolve(outcome);
        },
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      // The first look is at once: a job that had already ended answers without a tick's delay.
      if (!this.polling) {
        this.stop();
        void this.poll();
      }
    });
  }

  /** Ends every wait with 'closed' (shutdown) and refuses new ones. */
  close(): void {
    this.closed = true;
    for (const waiter of [...this.waiters]) waiter.settle({ kind: 'closed' });
    this.stop();
  }

  private stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.waiters.size === 0 || this.timer || this.polling) return;
    // Unref'd: a pending wait never keeps the process alive on its own.
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.poll();
    }, this.pollMs).unref();
  }

  private async poll(): Promise<void> {
    this.polling = true;
    try {
      const waiting = [...this.waiters];
      if (waiting.length === 0) return;
      const ids = [...new Set(waiting.map((w) => w.id))];
      let statuses: Map<string, JobStatus | null> | null = null;
      try {
        const read = await this.o.store.statuses(ids);
        statuses = new Map(ids.map((id, i) => [id, read[i] ?? null]));
      } catch (error) {
        this.o.onError?.(error);
      }
      const now = this.now();
      for (const waiter of waiting) {
        const status = statuses?.get(waiter.id);
        if (status === null) waiter.settle({ kind: 'gone' });
        else if (status && (status.state === 'completed' || status.state === 'failed'))
          waiter.settle({ kind: 'ended', status });
        else if (now >= waiter.deadline) waiter.settle({ kind: 'timeout' });
      }
    } finally {
      this.polling = false;
      this.schedule();
    }
  }
}
