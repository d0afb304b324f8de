// The backend's composition root: builds Redis clients, the job store, checkpoints, the queue,
// the engine behind its breaker, metrics and the logger; starts the API and/or a worker; and
// drains on shutdown. `floodgate backend` calls runBackendCli; tests call startBackend.
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { createLogger } from '../core/logger.js';
import { redactUrl } from '../core/redact-url.js';
import type { Readiness } from './api/deps.js';
import { createApiServer } from './api/server.js';
import { type BackendRole, parseRole, settingsFromEnv } from './config.js';
import type { AudioTools } from './jobs/audio-tools.js';
import { publishCancel, subscribeCancels } from './jobs/cancel-bus.js';
import { CheckpointManager } from './jobs/checkpoints.js';
import { createEngineBreaker, guardTranscriber, type Transcriber } from './jobs/guarded-transcriber.js';
import { createJobHandler } from './jobs/job-handler.js';
import { JobStore } from './jobs/job-store.js';
import { JobRunner } from './jobs/pipeline.js';
import { JobWorker, TranscriptionQueue } from './jobs/queue.js';
import { BackendMetrics } from './metrics.js';
import { DataPaths } from './paths.js';

export interface StartBackendOptions {
  port?: number;
  host?: string;
  role?: BackendRole;
  redisUrl: string;
  dataDir: string;
  whisperModel: string;
  whisperBinary?: string | null;
  whisperThreads?: number;
  whisperFastDecode?: boolean;
  logger?: Logger;
  /** Replaces whisper.cpp (tests). */
  transcriber?: Transcriber;
  /** Replaces ffmpeg (tests). */
  audio?: AudioTools;
  keyPrefix?: string;
  maxUploadBytes?: number;
  maxDurationSec?: number;
  checkpointIntervalMs?: number;
  checkpointEverySegments?: number | null;
  jobLeaseMs?: number;
  /** Engine breaker: time OPEN before probing again (default 60 s). */
  engineBreakerTimeoutMs?: number;
  clock?: Clock;
  /** Process-wide default metrics; off when several backends share a process (tests). */
  defaultMetrics?: boolean;
}

export interface RunningBackend {
  /** The API's port (0 when this process runs no API). */
  port: number;
  metrics: BackendMetrics;
  /** Graceful stop: no new requests or jobs, running jobs checkpointed and handed back, drain ≤ 10 s. */
  shutdown(): Promise<void>;
  /** Same as shutdown. */
  close(): Promise<void>;
}

/** How long shutdown waits for in-flight requests to end and running jobs to checkpoint and return. */
export const DRAIN_MS = 10_000;
const ENGINE_RECHECK_MS = 10_000;

export async function startBackend(options: StartBackendOptions): Promise<RunningBackend> {
  const role = options.role ?? 'all';
  const logger = options.logger ?? createLogger('floodgate-backend');
  const prefix = options.keyPrefix ?? 'floodgate:';
  const paths = new DataPaths(options.dataDir);
  await paths.ensure();

  // Commands fail fast while Redis is away, so requests get a 5xx and /readyz a reason, not a hang.
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {}); // reported once below and by /readyz; ioredis keeps reconnecting
  try {
    await withTimeout(redis.ping(), 3_000);
  } catch (err) {
    logger.error(
      { err, redis_url: redactUrl(options.redisUrl) },
      'Redis is not reachable: jobs and checkpoints need it. Install it (Debian: apt-get install redis-server; ' +
        'macOS: brew install redis), start it, and set REDIS_URL if it is not at redis://127.0.0.1:6379',
    );
  }

  const metrics = new BackendMetrics({ defaultMetrics: options.defaultMetrics ?? true });
  const checkpoints = new CheckpointManager({
    redis,
    prefix,
    checkpointIntervalMs: options.checkpointIntervalMs ?? 30_000,
    everySegments: options.checkpointEverySegments === undefined ? 5 : options.checkpointEverySegments,
    clock: options.clock,
  });
  checkpoints.on('saved', (e) => {
    metrics.checkpointSaves.inc();
    logger.debug(
      { job_id: e.jobId, stage: e.stage, segment_index: e.segmentIndex, appended: e.appended },
      'checkpoint saved',
    );
  });
  const store = new JobStore({ redis, prefix });
  const queue = new TranscriptionQueue({ redisUrl: options.redisUrl, prefix });
  const closers: (() => Promise<void>)[] = [];

  // --- worker -----------------------------------------------------------------------------------
  let engineReason: () => Promise<string | null> = async () => 'not checked (role api)';
  let worker: JobWorker | null = null;
  let engineTimer: NodeJS.Timeout | null = null;
  if (role !== 'api') {
    const media = options.transcriber && options.audio ? null : await import('./jobs/media-adapters.js');
    const engineConfig = {
      whisperModel: options.whisperModel,
      whisperBinary: options.whisperBinary ?? null,
      threads: options.whisperThreads ?? 2,
      fastDecode: options.whisperFastDecode ?? false,
    };
    engineReason = async () => (options.transcriber || !media ? null : media.whyEngineNotReady(engineConfig));
    const breaker = createEngineBreaker({
      clock: options.clock,
      metrics,
      logger,
      timeoutMs: options.engineBreakerTimeoutMs,
    });

    const startWorker = async (): Promise<void> => {
      const engine = options.transcriber ?? (await media!.createWhisperTranscriber(engineConfig));
      const audio = options.audio ?? media!.createAudioTools();
      const runner = new JobRunner({
        store,
        checkpoints,
        audio,
        engine: guardTranscriber(engine, breaker),
        paths,
        maxDurationSec: options.maxDurationSec ?? 7_200,
        logger,
        metrics,
      });
      worker = new JobWorker({
        redisUrl: options.redisUrl,
        prefix,
        leaseMs: options.jobLeaseMs,
        logger,
        handler: createJobHandler({ runner, store, checkpoints, paths, logger, metrics }),
      });
      const cancels = await subscribeCancels(
        options.redisUrl,
        prefix,
        (id) => worker?.stop(id, 'cancelled'),
        logger,
      );
      closers.push(() => cancels.close());
      worker.start();
      logger.info({ lease_ms: options.jobLeaseMs ?? 30_000 }, 'worker started');
    };

    const reason = await engineReason();
    if (reason === null) await startWorker();
    else {
      // The backend still starts without a model: /readyz says why, and the worker starts as
      // soon as the files appear (e.g. `floodgate model download` finishing).
      logger.warn(
        { reason },
        'whisper engine not ready; jobs wait in the queue. Provide a model: set WHISPER_MODEL to a ggml file, ' +
          'or run `npx floodgate model download base.en`',
      );
      engineTimer = setInterval(() => {
        void engineReason()
          .then(async (r) => {
            if (r !== null || worker || !engineTimer) return;
            clearInterval(engineTimer);
            engineTimer = null;
            logger.info('whisper engine found');
            await startWorker();
          })
          .catch((err) => logger.error({ err }, 'could not start the worker'));
      }, ENGINE_RECHECK_MS).unref();
    }
  }

  // --- API --------------------------------------------------------------------------------------
  let server: ReturnType<typeof createApiServer> | null = null;
  let port = 0;
  if (role !== 'worker') {
    const readiness = async (): Promise<Readiness> => {
      const checks: Record<string, string> = {};
      try {
        await withTimeout(redis.ping(), 1_000);
        checks.redis = 'ok';
      } catch (err) {
        checks.redis = `unreachable at ${redactUrl(options.redisUrl)}: ${(err as Error).message}`;
      }
      if (role === 'api') checks.engine = 'not checked (role api: the workers run it)';
      else checks.engine = (await engineReason()) ?? 'ok';
      const ready = checks.redis === 'ok' && (role === 'api' || checks.engine === 'ok');
      return { ready, checks };
    };
    server = createApiServer({
      store,
      queue,
      checkpoints,
      paths,
      publishCancel: (id) => publishCancel(redis, prefix, id),
      metrics,
      maxUploadBytes: options.maxUploadBytes ?? 200 * 1024 * 1024,
      logger,
      readiness,
    });
    const listening = server;
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(options.port ?? 8000, options.host ?? '127.0.0.1', () => {
        listening.off('error', reject);
        resolve();
      });
    });
    port = (listening.address() as AddressInfo).port;
    logger.info({ port, host: options.host ?? '127.0.0.1', role }, 'backend listening');
  }

  let stopping: Promise<void> | null = null;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info('backend shutting down');
      if (engineTimer) clearInterval(engineTimer);
      engineTimer = null;
      const deadline = Date.now() + DRAIN_MS;
      const closingServer = server ? closeServer(server, deadline) : Promise.resolve();
      // Running jobs checkpoint and return to the queue; BullMQ waits for that before closing.
      const closingWorker = worker ? (worker as JobWorker).close() : Promise.resolve();
      await Promise.all([
        closingServer,
        withTimeout(closingWorker, Math.max(0, deadline - Date.now())).catch((err) =>
          logger.warn({ err }, 'worker did not stop in time'),
        ),
      ]);
      await Promise.allSettled([queue.close(), ...closers.map((c) => c())]);
      redis.disconnect();
      logger.info('backend stopped');
    })();
    return stopping;
  };

  return { port, metrics, shutdown, close: shutdown };
}

export interface BackendCliOptions {
  port?: number;
  host?: string;
  role?: string;
  env?: Record<string, string | undefined>;
  logger?: Logger;
}

/** startBackend's options from the environment (backend/config.ts), with flags over them. */
export function backendOptionsFromEnv(options: BackendCliOptions = {}): StartBackendOptions {
  const env = options.env ?? process.env;
  const settings = settingsFromEnv(env);
  return {
    port: options.port ?? settings.port,
    host: options.host ?? settings.host,
    role: parseRole(options.role ?? env.BACKEND_ROLE),
    redisUrl: settings.redisUrl,
    dataDir: settings.dataDir,
    whisperModel: settings.whisperModel,
    whisperBinary: settings.whisperBinary,
    whisperThreads: settings.whisperThreads,
    whisperFastDecode: settings.whisperFastDecode,
    maxUploadBytes: settings.maxUploadBytes,
    maxDurationSec: settings.maxDurationSec,
    checkpointIntervalMs: settings.checkpointIntervalMs,
    checkpointEverySegments: settings.checkpointEverySegments,
    jobLeaseMs: settings.jobLeaseMs,
    keyPrefix: settings.keyPrefix,
    ...(options.logger ? { logger: options.logger } : {}),
  };
}

/** `floodgate backend`: settings from the environment, flags over them; exits 0 on SIGTERM/SIGINT. */
export async function runBackendCli(options: BackendCliOptions = {}): Promise<RunningBackend> {
  const logger = options.logger ?? createLogger('floodgate-backend');
  const backend = await startBackend(backendOptionsFromEnv({ ...options, logger }));
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'signal received');
    void backend.shutdown().then(
      // The last log lines are written before the process goes.
      () => logger.flush(() => process.exit(0)),
      (err) => {
        logger.error({ err }, 'shutdown failed');
        logger.flush(() => process.exit(1));
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return backend;
}

/** Stops accepting, lets in-flight requests finish until `deadline`, then cuts what is left. */
async function closeServer(server: ReturnType<typeof createApiServer>, deadline: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), Math.max(0, deadline - Date.now()));
  timer.unref();
  await closed;
  clearTimeout(timer);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
