// What the HTTP API needs from the rest of the backend, wired by main.ts.
import type { Logger } from 'pino';
import type { CheckpointManager } from '../jobs/checkpoints.js';
import type { JobNotice, JobStore } from '../jobs/job-store.js';
import type { JobWaiter } from '../jobs/job-waiter.js';
import type { TranscriptionQueue } from '../jobs/queue.js';
import type { BackendMetrics } from '../metrics.js';
import type { DataPaths } from '../paths.js';

export interface Readiness {
  ready: boolean;
  /** One entry per dependency: "ok", or why not. */
  checks: Record<string, string>;
}

/** The engine as the OpenAI-style API presents it. */
export interface EngineInfo {
  /** The installed model: its name, and its file's time in Unix seconds; null when none is installed. */
  model: { id: string; created: number } | null;
  /** null when jobs can run; otherwise why not (server paths included: for logs and /readyz only). */
  notReady: string | null;
}

export interface ApiDeps {
  store: JobStore;
  queue: TranscriptionQueue;
  checkpoints: CheckpointManager;
  paths: DataPaths;
  /** Tells the worker running job `id`, wherever it is, to stop now. */
  publishCancel(id: string): Promise<void>;
  metrics: BackendMetrics;
  maxUploadBytes: number;
  logger: Logger;
  readiness(): Promise<Readiness>;
  /** Why a queued job cannot start yet, or null; absent where this process cannot tell (role api). */
  engineNotice?(): Promise<JobNotice | null>;
  engine(): Promise<EngineInfo>;
  /** Where requests that answer with the transcript wait for their job. */
  waiter: JobWaiter;
  /** How long POST /v1/audio/transcriptions waits for its job before answering with the job's id. */
  transcriptionWaitMs: number;
}
