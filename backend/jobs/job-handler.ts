// What a worker does with one attempt of a job: run the pipeline, then turn its outcome into the
// job's final status and the queue's next step (see queue.ts for the mapping).
import type { Logger } from 'pino';
import { isCircuitBreakerOpenError } from '../../core/breaker/index.js';
import { codeOf, isJobError } from '../errors.js';
import type { BackendMetrics } from '../metrics.js';
import type { DataPaths } from '../paths.js';
import type { CheckpointManager } from './checkpoints.js';
import { isJobStopped } from './job-stopped.js';
import type { JobErrorInfo, JobStore } from './job-store.js';
import type { JobRunner } from './pipeline.js';
import type { Stage } from './progress.js';
import { type HandlerResult, type JobHandler, PermanentJobError } from './queue.js';

export interface JobHandlerOptions {
  runner: JobRunner;
  store: JobStore;
  checkpoints: CheckpointManager;
  paths: DataPaths;
  logger: Logger;
  metrics?: BackendMetrics | null;
  now?: () => number;
}

/** The public message of a job the engine failed; why is in the log. */
export const ENGINE_FAILED_MESSAGE = 'the transcription engine failed; the server logged why';

/** A job never waits less than this for an open breaker, so a flapping engine is not hammered. */
const MIN_BREAKER_WAIT_MS = 1_000;

export function createJobHandler(o: JobHandlerOptions): JobHandler {
  const now = o.now ?? Date.now;

  const fail = async (id: string, error: JobErrorInfo, stage?: Stage): Promise<void> => {
    await o.store.update(id, stage ? { state: 'failed', stage, error } : { state: 'failed', error });
    await Promise.all([o.checkpoints.deleteAll(id), o.paths.removeJobFiles(id)]);
    o.metrics?.jobs.inc({ status: 'failed' });
  };

  return async (id, context): Promise<HandlerResult> => {
    const log = o.logger.child({ job_id: id });
    try {
      if (await o.runner.run(id, context.signal)) o.metrics?.jobs.inc({ status: 'completed' });
      return { kind: 'done' };
    } catch (error) {
      if (isJobStopped(error)) {
        switch (error.reason) {
          case 'cancelled':
            // The API deleted what it could; files or checkpoints written since go now.
            await Promise.all([o.store.delete(id), o.checkpoints.deleteAll(id), o.paths.removeJobFiles(id)]);
            o.metrics?.jobs.inc({ status: 'cancelled' });
            log.info('job cancelled');
            return { kind: 'done' };
          case 'shutdown':
            await o.store.update(id, { state: 'queued' });
            log.info('job handed back to the queue');
            return { kind: 'hand_back' };
          case 'lease_lost':
            log.warn('lease lost; leaving the job to its new worker');
            return { kind: 'abandon' };
        }
      }
      const permanent = permanentCode(error);
      if (permanent) {
        const message = error instanceof Error ? error.message : String(error);
        await fail(id, { code: permanent, message }, permanent === 'invalid_audio' ? 'validate' : undefined);
        log.info({ code: permanent, reason: message }, 'job failed for good');
        throw new PermanentJobError(message, { cause: error });
      }
      if (isCircuitBreakerOpenError(error)) {
        // The engine is down, not the job: wait for the breaker without spending an attempt.
        const at = now() + Math.max(MIN_BREAKER_WAIT_MS, error.retryAfterMs);
        await o.store.update(id, { state: 'queued' });
        log.warn({ retry_in_ms: at - now() }, 'engine breaker open; job waits');
        return { kind: 'retry_at', at };
      }
      if (context.finalAttempt) {
        // The engine's own message names server paths; the client learns only what kind of failure.
        await fail(id, { code: 'engine_failed', message: ENGINE_FAILED_MESSAGE });
        log.error({ err: error }, 'job failed: engine error, no attempts left');
      } else {
        await o.store.update(id, { state: 'queued' });
        log.warn({ err: error, failed_attempts: context.failedAttempts + 1 }, 'engine error; job will retry');
      }
      throw error;
    }
  };
}

/** Failures no retry can fix: bad input (from the runner or the media layer), a bad argument. */
function permanentCode(error: unknown): 'invalid_audio' | 'invalid_argument' | null {
  if (isJobError(error, 'invalid_audio')) return 'invalid_audio';
  const code = codeOf(error);
  return code === 'invalid_audio' || code === 'invalid_argument' ? code : null;
}
