// The backend's composition root: builds Redis clients, the job store, checkpoints, the queue,
// the engine behind its breaker, metrics and the logger; starts the API and/or a worker; and
// drains on shutdown. `floodgate backend` calls runBackendCli; tests call startBackend.
import { stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { createLogger } from '../core/logger.js';
import { redactUrl } from '../core/redact-url.js';
import type { EngineInfo, Readiness } from './api/deps.js';
import { createApiServer } from './api/server.js';
import type { AudioTools } from './jobs/audio-tools.js';
import { publishCancel, subscribeCancels } from './jobs/cancel-bus.js';
import { CheckpointManager } from './jobs/checkpoints.js';
import { createEngineBreaker, guardTranscriber, type Transcriber } from './jobs/guarded-transcriber.js';
import { createJobHandler } from './jobs/job-handler.js';
import { type JobNotice, JobStore } from './jobs/job-store.js';
import { JobWaiter } from './jobs/job-waiter.js';
import type { EnginePart, EngineProblem } from './jobs/media-adapters.js';
import { JobRunner } from './jobs/pipeline.js';
import { JobWorker, TranscriptionQueue } from './jobs/queue.js';
import { BackendMetrics } from './metrics.js';
import { DataPaths } from './paths.js';
import {
  BACKEND_DEFAULTS,
  type BackendFlags,
  type BackendSettings,
  backendSettingsFromEnv,
} from './settings.js';

/** What startBackend takes besides its settings: collaborators, replaced in tests and benches. */
export interface BackendDeps {
  logger?: Logger;
  /** Replaces whisper.cpp (tests). */
  transcriber?: Transcriber;
  /** Replaces ffmpeg (tests). */
  audio?: AudioTools;
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
const ENGINE_CHECK_TTL_MS = 2_000;

/** Starts the API and/or a worker (settings.role) as `settings` say (backend/settings.ts). */
export async function startBackend(
  settings: BackendSettings,
  deps: BackendDeps = {},
): Promise<RunningBackend> {
  const logger = deps.logger ?? createLogger('floodgate-backend');
  const paths = new DataPaths(settings.dataDir);
  await paths.ensure();
  const redis = await connectRedis(settings.redisUrl, logger);
  const metrics = new BackendMetrics({ defaultMetrics: deps.defaultMetrics ?? true });
  const checkpoints = checkpointManager(settings, redis, metrics, logger, deps.clock);
  const store = new JobStore({ redis, prefix: settings.keyPrefix });
  const queue = new TranscriptionQueue({ redisUrl: settings.redisUrl, prefix: settings.keyPrefix });
  const shared: Shared = { settings, deps, logger, redis, paths, metrics, checkpoints, store, queue };

  const worker = settings.role === 'api' ? null : await startWorkerRole(shared);
  const api = settings.role === 'worker' ? null : await startApiRole(shared, worker);

  let stopping: Promise<void> | null = null;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info('backend shutting down');
      const deadline = Date.now() + DRAIN_MS;
      // Requests waiting for a transcript answer now, with their job's id, instead of holding the drain.
      api?.waiter.close();
      await Promise.all([api ? closeServer(api.server, deadline) : undefined, worker?.stop(deadline)]);
      await Promise.allSettled([queue.close(), worker?.release()]);
      redis.disconnect();
      logger.info('backend stopped');
    })();
    return stopping;
  };

  return { port: api?.port ?? 0, metrics, shutdown, close: shutdown };
}

/** What both roles are built on. */
interface Shared {
  readonly settings: BackendSettings;
  readonly deps: BackendDeps;
  readonly logger: Logger;
  readonly redis: Redis;
  readonly paths: DataPaths;
  readonly metrics: BackendMetrics;
  readonly checkpoints: CheckpointManager;
  readonly store: JobStore;
  readonly queue: TranscriptionQueue;
}

/** A Redis client whose commands fail fast while Redis is away; an unreachable Redis is logged, not fatal. */
async function connectRedis(redisUrl: string, logger: Logger): Promise<Redis> {
  // Failing fast gives requests a 5xx and /readyz a reason, not a hang.
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {}); // reported once below and by /readyz; ioredis keeps reconnecting
  try {
    await withTimeout(redis.ping(), 3_000);
  } catch (err) {
    logger.error(
      { err, redis_url: redactUrl(redisUrl) },
      'Redis is not reachable: jobs and checkpoints need it. Install it (Debian: apt-get install redis-server; ' +
        `macOS: brew install redis), start it, and set REDIS_URL if it is not at ${BACKEND_DEFAULTS.REDIS_URL}`,
    );
  }
  return redis;
}

function checkpointManager(
  settings: BackendSettings,
  redis: Redis,
  metrics: BackendMetrics,
  logger: Logger,
  clock: Clock | undefined,
): CheckpointManager {
  const checkpoints = new CheckpointManager({
    redis,
    prefix: settings.keyPrefix,
    checkpointIntervalMs: settings.checkpointIntervalMs,
    everySegments: settings.checkpointEverySegments,
    clock,
  });
  checkpoints.on('saved', (e) => {
    metrics.checkpointSaves.inc();
    logger.debug(
      { job_id: e.jobId, stage: e.stage, segment_index: e.segmentIndex, appended: e.appended },
      'checkpoint saved',
    );
  });
  return checkpoints;
}

/** The engine's parts this process checks (the real ones, not those replaced in tests), and what is missing. */
interface EngineCheck {
  parts: readonly EnginePart[];
  problems: readonly EngineProblem[];
}

interface WorkerRole {
  /** What /readyz and GET /status report; recent (at most ENGINE_CHECK_TTL_MS old). */
  checkEngine(): Promise<EngineCheck>;
  /** Running jobs checkpoint and return to the queue, until `deadline` at most. */
  stop(deadline: number): Promise<void>;
  /** Ends the cancel subscription; after stop. */
  release(): Promise<void>;
}

/** The worker: runs jobs off the queue, now or as soon as the engine (model, binary) is there. */
async function startWorkerRole(x: Shared): Promise<WorkerRole> {
  const { settings, deps, logger, metrics, store, checkpoints, paths } = x;
  const { redisUrl, keyPrefix: prefix } = settings;
  const media = deps.transcriber && deps.audio ? null : await import('./jobs/media-adapters.js');
  const engineConfig = {
    whisperModel: settings.whisperModel,
    whisperBinary: settings.whisperBinary,
    threads: settings.whisperThreads,
    fastDecode: settings.whisperFastDecode,
  };
  const parts: EnginePart[] = [
    ...(deps.audio ? [] : (['ffmpeg', 'ffprobe'] as const)),
    ...(deps.transcriber ? [] : (['whisper', 'model'] as const)),
  ];
  let cached: { at: number; check: Promise<EngineCheck> } | null = null;
  // Status polls ask too: a check (a few file lookups) is shared by the polls of a second or two.
  const checkEngine = (): Promise<EngineCheck> => {
    const now = Date.now();
    if (cached && now - cached.at < ENGINE_CHECK_TTL_MS) return cached.check;
    const check = (async (): Promise<EngineCheck> => {
      if (!media) return { parts, problems: [] };
      const [audioProblems, whisperProblems] = await Promise.all([
        deps.audio ? [] : media.audioToolProblems(settings.mediaTools),
        deps.transcriber ? [] : media.whisperProblems(engineConfig),
      ]);
      return { parts, problems: [...audioProblems, ...whisperProblems] };
    })();
    cached = { at: now, check };
    return check;
  };
  const breaker = createEngineBreaker({ clock: deps.clock, metrics, logger });
  let worker: JobWorker | null = null;
  let engineTimer: NodeJS.Timeout | null = null;
  const closers: (() => Promise<void>)[] = [];

  const startWorker = async (): Promise<void> => {
    const engine = deps.transcriber ?? (await media!.createWhisperTranscriber(engineConfig));
    const audio = deps.audio ?? media!.createAudioTools(settings.mediaTools);
    const runner = new JobRunner({
      store,
      checkpoints,
      audio,
      engine: guardTranscriber(engine, breaker),
      paths,
      maxDurationSec: settings.maxDurationSec,
      logger,
      metrics,
    });
    worker = new JobWorker({
      redisUrl,
      prefix,
      leaseMs: settings.jobLeaseMs,
      logger,
      handler: createJobHandler({ runner, store, checkpoints, paths, logger, metrics }),
    });
    const cancels = await subscribeCancels(redisUrl, prefix, (id) => worker?.stop(id, 'cancelled'), logger);
    closers.push(() => cancels.close());
    worker.start();
    logger.info({ lease_ms: settings.jobLeaseMs }, 'worker started');
  };

  const first = await checkEngine();
  if (first.problems.length === 0) await startWorker();
  else {
    // The backend still starts without a model (or ffmpeg): /readyz and the status of every queued
    // job say why, and the worker starts as soon as the files appear (e.g. `floodgate model
    // download` finishing). A job never starts only to fail for want of a tool.
    logger.warn(
      { reason: first.problems.map((p) => p.detail).join('; '), missing: first.problems.map((p) => p.part) },
      'engine not ready; jobs wait in the queue until every part in `reason` is in place (a model: ' +
        'WHISPER_MODEL or `npx floodgate model download base.en`; ffmpeg: FFMPEG_PATH/FFPROBE_PATH or install it)',
    );
    engineTimer = setInterval(() => {
      void checkEngine()
        .then(async (r) => {
          if (r.problems.length > 0 || worker || !engineTimer) return;
          clearInterval(engineTimer);
          engineTimer = null;
          logger.info('engine ready: every part is in place');
          await startWorker();
        })
        .catch((err) => logger.error({ err }, 'could not start the worker'));
    }, ENGINE_RECHECK_MS).unref();
  }

  return {
    checkEngine,
    async stop(deadline) {
      if (engineTimer) clearInterval(engineTimer);
      engineTimer = null;
      // Running jobs checkpoint and return to the queue; BullMQ waits for that before closing.
      const closing = worker ? (worker as JobWorker).close() : Promise.resolve();
      await withTimeout(closing, Math.max(0, deadline - Date.now())).catch((err) =>
        logger.warn({ err }, 'worker did not stop in time'),
      );
    },
    async release() {
      await Promise.allSettled(closers.map((c) => c()));
    },
  };
}

/** The HTTP API, listening; its /readyz checks Redis and, in this process's worker, the engine. */
async function startApiRole(
  x: Shared,
  worker: WorkerRole | null,
): Promise<{ server: ReturnType<typeof createApiServer>; port: number; waiter: JobWaiter }> {
  const { settings, logger, redis } = x;
  const { role, redisUrl } = settings;
  const readiness = async (): Promise<Readiness> => {
    const checks: Record<string, string> = {};
    try {
      await withTimeout(redis.ping(), 1_000);
      checks.redis = 'ok';
    } catch (err) {
      checks.redis = `unreachable at ${redactUrl(redisUrl)}: ${(err as Error).message}`;
    }
    if (worker === null) checks.engine = 'not checked (role api: the workers run it)';
    else {
      const { parts, problems } = await worker.checkEngine();
      checks.engine = problems.length === 0 ? 'ok' : problems.map((p) => p.detail).join('; ');
      for (const part of parts) checks[part] = problems.find((p) => p.part === part)?.detail ?? 'ok';
    }
    const ready = checks.redis === 'ok' && (worker === null || checks.engine === 'ok');
    return { ready, checks };
  };
  const engineNotice =
    worker === null
      ? undefined
      : async (): Promise<JobNotice | null> => {
          const { problems } = await worker.checkEngine();
          if (problems.length === 0) return null;
          return { code: 'engine_not_ready', message: problems.map((p) => p.notice).join('; ') };
        };
  const engine = async (): Promise<EngineInfo> => {
    const name = modelName(settings.whisperModel);
    // An API-only process does not run the engine: the workers hold the model, so it is not looked for here.
    if (worker === null) return { model: { id: name, created: 0 }, notReady: null };
    const { problems } = await worker.checkEngine();
    const notReady = problems.length === 0 ? null : problems.map((p) => p.notice).join('; ');
    const created = await stat(settings.whisperModel).then(
      (s) => Math.floor(s.mtimeMs / 1000),
      () => null,
    );
    return { model: created === null ? null : { id: name, created }, notReady };
  };
  const waiter = new JobWaiter({
    store: x.store,
    onError: (err) => logger.warn({ err }, 'could not read the status of awaited jobs; retrying'),
  });
  const server = createApiServer({
    store: x.store,
    queue: x.queue,
    checkpoints: x.checkpoints,
    paths: x.paths,
    publishCancel: (id) => publishCancel(redis, settings.keyPrefix, id),
    metrics: x.metrics,
    maxUploadBytes: settings.maxUploadBytes,
    logger,
    readiness,
    engineNotice,
    engine,
    waiter,
    transcriptionWaitMs: settings.transcriptionWaitMs,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, host: settings.host, role }, 'backend listening');
  return { server, port, waiter };
}

/** The model's name as the OpenAI-style API lists it: its file name without `ggml-` and `.bin`. */
export function modelName(modelPath: string): string {
  return (
    basename(modelPath)
      .replace(/\.bin$/, '')
      .replace(/^ggml-/, '') || 'whisper'
  );
}

export interface BackendCliOptions extends BackendFlags {
  env?: Record<string, string | undefined>;
  logger?: Logger;
}

/** `floodgate backend`: settings from the environment, flags over them; exits 0 on SIGTERM/SIGINT. */
export async function runBackendCli(options: BackendCliOptions = {}): Promise<RunningBackend> {
  const logger = options.logger ?? createLogger('floodgate-backend');
  const { env, port, host, role } = options;
  const backend = await startBackend(backendSettingsFromEnv(env, { port, host, role }), { logger });
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
