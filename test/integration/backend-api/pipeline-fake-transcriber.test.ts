// The pipeline with a fake transcriber and fake audio, against real Redis: resume after a crash,
// hand-back on shutdown, engine failures, cancellation and invalid input.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointManager } from '../../../backend/jobs/checkpoints.js';
import type { Transcript } from '../../../backend/jobs/format.js';
import { createEngineBreaker, guardTranscriber } from '../../../backend/jobs/guarded-transcriber.js';
import { newJobId } from '../../../backend/jobs/ids.js';
import { createJobHandler, ENGINE_FAILED_MESSAGE } from '../../../backend/jobs/job-handler.js';
import { isJobStopped, JobStopped } from '../../../backend/jobs/job-stopped.js';
import { JobStore } from '../../../backend/jobs/job-store.js';
import { JobRunner } from '../../../backend/jobs/pipeline.js';
import { PermanentJobError } from '../../../backend/jobs/queue.js';
import { BackendMetrics } from '../../../backend/metrics.js';
import { DataPaths } from '../../../backend/paths.js';
import { ManualClock } from '../../../core/clock.js';
import { expectedFakeSegments, FakeTranscriber, fakeAudioTools } from '../../helpers/backend.js';
import { deletePrefix, newRedis, uniquePrefix } from '../../helpers/redis.js';

const EVERY = 3;
let redis: Redis;
let dataDir: string;
let paths: DataPaths;
const prefix = uniquePrefix('runner');
const logger = pino({ level: 'silent' });

beforeAll(async () => {
  redis = newRedis();
  dataDir = await mkdtemp(join(tmpdir(), 'fg-runner-'));
  paths = new DataPaths(dataDir);
  await paths.ensure();
});
afterAll(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
  await rm(dataDir, { recursive: true, force: true });
});

/** One "process": its own CheckpointManager (no memory of earlier attempts), runner and handler. */
function worker(transcriber = new FakeTranscriber(), options: { breakerThreshold?: number } = {}) {
  const metrics = new BackendMetrics({ defaultMetrics: false });
  const clock = new ManualClock();
  const checkpoints = new CheckpointManager({
    redis,
    prefix,
    clock,
    checkpointIntervalMs: 3_600_000,
    everySegments: EVERY,
  });
  const store = new JobStore({ redis, prefix });
  const breaker = createEngineBreaker({ clock, metrics, failureThreshold: options.breakerThreshold ?? 5 });
  const runner = new JobRunner({
    store,
    checkpoints,
    audio: fakeAudioTools(),
    engine: guardTranscriber(transcriber, breaker),
    paths,
    maxDurationSec: 600,
    logger,
    metrics,
  });
  const handler = createJobHandler({ runner, store, checkpoints, paths, logger, metrics, now: () => 1_000 });
  return { transcriber, runner, handler, store, checkpoints, metrics, breaker };
}

async function newJob(audio: string): Promise<string> {
  const id = newJobId();
  await writeFile(paths.upload(id), audio);
  await new JobStore({ redis, prefix }).create({ id, language: null, format: null, idempotencyHash: null });
  return id;
}

const context = (signal = new AbortController().signal) => ({
  signal,
  failedAttempts: 0,
  finalAttempt: false,
});

let cleanRun: Transcript;

describe('JobRunner with a fake transcriber', () => {
  it('runs every stage and yields the transcript', async () => {
    const w = worker();
    const id = await newJob('300');
    cleanRun = (await w.runner.run(id, new AbortController().signal))!;
    expect(cleanRun.segments).toEqual(expectedFakeSegments(300));
    expect(cleanRun).toMatchObject({ job_id: id, language: 'en', duration: 300 });
    expect(w.transcriber.calls).toEqual([0, 30, 60, 90, 120, 150, 180, 210, 240, 270]);
    const status = await w.store.status(id);
    expect(status).toMatchObject({
      state: 'completed',
      stage: 'done',
      progress: 1,
      segments_done: 10,
      resumed: false,
      attempts: 1,
    });
    expect(await w.checkpoints.getLatestCheckpoint(id)).toBeNull();
    expect(await readdir(paths.work)).not.toContain(id);
  });

  it('does nothing for a job that already ended (a worker died after storing its result)', async () => {
    const w = worker();
    const id = await newJob('30');
    await w.runner.run(id, new AbortController().signal);
    expect(await w.handler(id, context())).toEqual({ kind: 'done' });
    expect(w.transcriber.calls).toEqual([0]);
    expect(await w.store.status(id)).toMatchObject({ state: 'completed', attempts: 1 });
  });

  it('resumes a crashed attempt after its last checkpoint, with the same transcript', async () => {
    const first = worker();
    const id = await newJob('300');
    // The first attempt dies while transcribing segment 7 (210 s): no further write happens.
    const held = first.transcriber.hold(210);
    const dying = new AbortController();
    const crashed = first.runner.run(id, dying.signal).catch((e) => e);
    await held;
    const beforeCrash = await first.checkpoints.getLatestCheckpoint(id);
    dying.abort(new JobStopped('lease_lost'));
    expect(isJobStopped(await crashed, 'lease_lost')).toBe(true);
    // Checkpoints every 3 segments: after segments 2 and 5.
    expect(beforeCrash?.segment_index).toBe(5);

    const second = worker();
    const result = (await second.runner.run(id, new AbortController().signal))!;
    expect(result.segments).toEqual(cleanRun.segments);
    expect(result.text).toBe(cleanRun.text);
    // Starts at the segment after the checkpoint: only segments 6 and 7 (180 s, 210 s) are done twice.
    expect(second.transcriber.calls).toEqual([180, 210, 240, 270]);
    const redone = second.transcriber.calls.filter((s) => first.transcriber.calls.includes(s));
    expect(redone.length).toBeLessThanOrEqual(EVERY);
    expect(await second.store.status(id)).toMatchObject({ state: 'completed', resumed: true, attempts: 2 });
    expect(await second.metrics.registry.getSingleMetricAsString('checkpoint_recoveries_total')).toMatch(
      / 1$/,
    );
  });

  it('on shutdown checkpoints everything completed and hands the job back', async () => {
    const first = worker();
    const id = await newJob('300');
    const held = first.transcriber.hold(120);
    const stop = new AbortController();
    const outcome = first.handler(id, context(stop.signal));
    await held;
    stop.abort(new JobStopped('shutdown'));
    expect(await outcome).toEqual({ kind: 'hand_back' });
    expect((await first.checkpoints.getLatestCheckpoint(id))?.segment_index).toBe(3);
    expect(await first.store.status(id)).toMatchObject({ state: 'queued', segments_done: 4 });

    const second = worker();
    expect(await second.handler(id, context())).toEqual({ kind: 'done' });
    expect(second.transcriber.calls).toEqual([120, 150, 180, 210, 240, 270]);
    expect((await second.store.resultJson(id)) !== null).toBe(true);
    expect(JSON.parse((await second.store.resultJson(id))!).segments).toEqual(cleanRun.segments);
  });

  it('an engine failure keeps completed work, and an open breaker makes the job wait', async () => {
    const w = worker(new FakeTranscriber(), { breakerThreshold: 1 });
    const id = await newJob('300');
    const held = w.transcriber.hold(90);
    const first = w.handler(id, context()).catch((e) => e);
    await held;
    w.transcriber.failWith = new Error('whisper exited with code 134');
    w.transcriber.release(90);
    expect(((await first) as Error).message).toBe('whisper exited with code 134');
    expect((await w.checkpoints.getLatestCheckpoint(id))?.segment_index).toBe(2);
    expect(await w.store.status(id)).toMatchObject({ state: 'queued', error: null });
    expect(w.breaker.state).toBe('OPEN');

    // The breaker is open: the job is delayed by its time left, without spending an attempt.
    expect(await w.handler(id, context())).toEqual({ kind: 'retry_at', at: 1_000 + 60_000 });
    w.breaker.reset();
    w.transcriber.failWith = null;
    expect(await w.handler(id, context())).toEqual({ kind: 'done' });
    expect(JSON.parse((await w.store.resultJson(id))!).segments).toEqual(cleanRun.segments);
  });

  it('the last attempt of a failing engine fails the job with engine_failed', async () => {
    const w = worker();
    w.transcriber.failWith = new Error('model file is corrupt');
    const id = await newJob('30');
    await expect(w.handler(id, { ...context(), finalAttempt: true })).rejects.toThrow(
      'model file is corrupt',
    );
    // What the engine said stays in the log: it may name server paths.
    expect(await w.store.status(id)).toMatchObject({
      state: 'failed',
      error: { code: 'engine_failed', message: ENGINE_FAILED_MESSAGE },
    });
  });

  it('a deleted job stops at the next segment and leaves nothing behind', async () => {
    const w = worker();
    const id = await newJob('300');
    const held = w.transcriber.hold(60);
    const outcome = w.handler(id, context());
    await held;
    await w.store.delete(id);
    w.transcriber.release(60);
    expect(await outcome).toEqual({ kind: 'done' });
    expect(w.transcriber.calls).toEqual([0, 30, 60]);
    expect(await w.checkpoints.getLatestCheckpoint(id)).toBeNull();
    expect(await readdir(paths.work)).not.toContain(id);
    expect(await readdir(paths.uploads)).not.toContain(id);
    expect(await w.metrics.registry.getSingleMetricAsString('transcription_jobs_total')).toContain(
      'transcription_jobs_total{status="cancelled"} 1',
    );
  });

  it.each([
    ['undecodable', 'not audio at all', /cannot decode the upload/],
    ['empty', '0', /the audio is empty/],
    ['too long', '601', /the limit is 600 s/],
  ])('%s audio fails at validate with invalid_audio, permanently', async (_name, audio, message) => {
    const w = worker();
    const id = await newJob(audio);
    const error = await w.handler(id, context()).catch((e) => e);
    expect(error).toBeInstanceOf(PermanentJobError);
    const status = await w.store.status(id);
    expect(status).toMatchObject({ state: 'failed', stage: 'validate', error: { code: 'invalid_audio' } });
    expect(status?.error?.message).toMatch(message);
    expect(w.transcriber.calls).toEqual([]);
    expect(await readdir(paths.uploads)).not.toContain(id);
  });
});
