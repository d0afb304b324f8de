// Durable jobs on BullMQ. A worker holds a job under a lease (BullMQ's lock, renewed while it
// runs); when a worker dies (SIGKILL, power loss) the lease expires, a stalled-job check in any
// live worker puts the job back in the queue, and the next worker resumes it from its checkpoint.
//
// The handler decides each attempt's fate; this module maps it onto BullMQ:
//   done        → completed
//   retry_at    → delayed until then without spending an attempt (the engine breaker is open)
//   hand_back   → back to wait at once (graceful shutdown, after checkpointing)
//   abandon     → the lease was lost; another worker owns the job, so do nothing
//   throws PermanentJobError → failed, never retried (invalid_audio)
//   throws anything else     → retried with exponential backoff, up to `attempts`
//
// BullMQ keys live under `<prefix>bull:transcribe:*`.
import { DelayedError, type Job, Queue, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { FloodgateError, hasBrand } from '../../core/errors.js';
import { JobStopped, type StopReason } from './job-stopped.js';

export const QUEUE_NAME = 'transcribe';

export type HandlerResult =
  | { kind: 'done' }
  | { kind: 'retry_at'; at: number }
  | { kind: 'hand_back' }
  | { kind: 'abandon' };

export interface JobContext {
  signal: AbortSignal;
  /** Failed attempts so far (BullMQ's attemptsMade). */
  failedAttempts: number;
  /** True when a thrown error will not be retried. */
  finalAttempt: boolean;
}

export type JobHandler = (jobId: string, context: JobContext) => Promise<HandlerResult>;

/** Thrown by a handler for a failure retrying cannot fix. */
export class PermanentJobError extends FloodgateError<'permanent'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PermanentJobError', 'permanent', message, options);
  }
}

export function isPermanentJobError(error: unknown): error is PermanentJobError {
  return hasBrand(error, 'PermanentJobError');
}

export interface QueueConnectionOptions {
  redisUrl: string;
  /** The backend's key prefix, e.g. "floodgate:". */
  prefix: string;
}

export interface TranscriptionQueueOptions extends QueueConnectionOptions {
  /** Attempts for engine failures (default 5); an open breaker does not spend them. */
  attempts?: number;
  backoffMs?: number;
}

export type RemoveResult = 'removed' | 'running' | 'absent';

export class TranscriptionQueue {
  private readonly connection: Redis;
  private readonly queue: Queue;

  constructor(options: TranscriptionQueueOptions) {
    this.connection = bullConnection(options.redisUrl);
    this.queue = new Queue(QUEUE_NAME, {
      connection: this.connection,
      prefix: bullPrefix(options.prefix),
      defaultJobOptions: {
        attempts: options.attempts ?? 5,
        backoff: { type: 'exponential', delay: options.backoffMs ?? 2_000 },
        // The job's status and result live in the JobStore; BullMQ's copy is only scheduling state.
        removeOnComplete: true,
        removeOnFail: true,
      },
    });
  }

  /** Enqueues job `id`; adding an id that is already queued is a no-op. */
  async add(id: string): Promise<void> {
    await this.queue.add(QUEUE_NAME, {}, { jobId: id });
  }

  /** Removes a waiting or delayed job. A running one is locked by its worker: stop it there. */
  async remove(id: string): Promise<RemoveResult> {
    try {
      return (await this.queue.remove(id)) === 1 ? 'removed' : 'running';
    } catch {
      return 'absent';
    }
  }

  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('wait', 'active', 'delayed', 'failed', 'completed');
  }

  async close(): Promise<void> {
    await this.queue.close();
    this.connection.disconnect();
  }
}

export interface JobWorkerOptions extends QueueConnectionOptions {
  handler: JobHandler;
  logger: Logger;
  /** The lease: how long a job stays locked without renewal (default 30 s). */
  leaseMs?: number;
  concurrency?: number;
  /**
   * How many lease expiries a job survives before BullMQ fails it. High: a worker dying is not
   * the job's fault, and a job killed ten times must still finish.
   */
  maxStalledCount?: number;
}

export class JobWorker {
  private readonly connection: Redis;
  private readonly worker: Worker;
  private readonly running = new Map<string, AbortController>();
  private readonly handler: JobHandler;
  private readonly logger: Logger;

  constructor(options: JobWorkerOptions) {
    const leaseMs = options.leaseMs ?? 30_000;
    this.handler = options.handler;
    this.logger = options.logger;
    this.connection = bullConnection(options.redisUrl);
    this.worker = new Worker(QUEUE_NAME, (job, token) => this.process(job, token), {
      connection: this.connection,
      prefix: bullPrefix(options.prefix),
      concurrency: options.concurrency ?? 1,
      lockDuration: leaseMs,
      // Look for expired leases as often as a lease lasts, so a dead worker's job waits ~2 leases.
      stalledInterval: leaseMs,
      maxStalledCount: options.maxStalledCount ?? 1_000,
      autorun: false,
    });
    this.worker.on('error', (err) => this.logger.error({ err }, 'queue worker error'));
    this.worker.on('stalled', (jobId) => this.logger.warn({ job_id: jobId }, 'lease expired; job requeued'));
    // A lease we could not renew may already belong to another worker: stop without writing.
    this.worker.on('lockRenewalFailed', (jobIds) => {
      for (const id of jobIds) this.stop(id, 'lease_lost');
    });
  }

  start(): void {
    void this.worker.run().catch((err) => this.logger.error({ err }, 'queue worker stopped'));
  }

  /** Stops job `id` if this worker is running it; true if it was. */
  stop(id: string, reason: StopReason): boolean {
    const controller = this.running.get(id);
    if (!controller) return false;
    if (!controller.signal.aborted) controller.abort(new JobStopped(reason));
    return true;
  }

  runningJobs(): string[] {
    return [...this.running.keys()];
  }

  /** Graceful stop: running jobs checkpoint and go back to the queue; then the worker closes. */
  async close(): Promise<void> {
    for (const id of this.running.keys()) this.stop(id, 'shutdown');
    await this.worker.close();
    this.connection.disconnect();
  }

  private async process(job: Job, token: string | undefined): Promise<void> {
    const id = job.id!;
    const controller = new AbortController();
    this.running.set(id, controller);
    const maxAttempts = job.opts.attempts ?? 1;
    try {
      const result = await this.handler(id, {
        signal: controller.signal,
        failedAttempts: job.attemptsMade,
        finalAttempt: job.attemptsMade + 1 >= maxAttempts,
      });
      switch (result.kind) {
        case 'done':
          return;
        case 'retry_at':
          await job.moveToDelayed(result.at, token);
          throw new DelayedError();
        case 'hand_back':
          await job.moveToWait(token);
          throw new WaitingError();
        case 'abandon':
          // BullMQ's own completion would fail on the lock it no longer holds; say why first.
          throw new Error('lease lost; the job belongs to another worker');
      }
    } catch (error) {
      if (isPermanentJobError(error)) throw new UnrecoverableError(error.message);
      throw error;
    } finally {
      this.running.delete(id);
    }
  }
}

function bullConnection(url: string): Redis {
  // BullMQ needs maxRetriesPerRequest: null: its blocking calls must wait out reconnects.
  return new Redis(url, { maxRetriesPerRequest: null });
}

function bullPrefix(prefix: string): string {
  return `${prefix}bull`;
}
