// The pipeline: the one place the stages are sequenced.
//   upload (the API) → normalize → validate → transcribe → format
// Each stage ends in a checkpoint, and transcription checkpoints as the CheckpointManager's policy
// says, so an attempt that starts after a crash or a hand-back skips what is durable and resumes
// at the segment after the last checkpoint. Segment boundaries come from a plan stored once per
// job, and a detected language is kept in the checkpoint, so a resumed run transcribes exactly
// the audio an uninterrupted run would, and yields the same transcript.
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { codeOf, JobError } from '../errors.js';
import { isMediaError } from '../media/errors.js';
import { offsetTranscript } from '../media/segment-plan.js';
import type { BackendMetrics } from '../metrics.js';
import type { DataPaths } from '../paths.js';
import type { AudioTools } from './audio-tools.js';
import type { Checkpoint, CheckpointManager } from './checkpoints.js';
import { joinText, type Transcript, type TranscriptSegment } from './format.js';
import type { Transcriber } from './guarded-transcriber.js';
import { isJobStopped, JobStopped } from './job-stopped.js';
import type { JobRecord, JobStore, PlannedSegment, StatusUpdate } from './job-store.js';
import { STAGE_DONE_PROGRESS, stageAtLeast, transcribeProgress } from './progress.js';

/** What a checkpoint carries besides segments; small and of constant size. */
export interface CheckpointMetadata {
  duration?: number;
  /** The language transcription settled on, reused by every later segment and attempt. */
  language?: string;
  segments_total?: number;
}

type JobCheckpoint = Checkpoint<TranscriptSegment, CheckpointMetadata>;

export interface JobRunnerOptions {
  store: JobStore;
  checkpoints: CheckpointManager;
  audio: AudioTools;
  /** The breaker-guarded engine. */
  engine: Transcriber;
  paths: DataPaths;
  /** Longer audio fails validate with invalid_audio. */
  maxDurationSec: number;
  logger: Logger;
  metrics?: BackendMetrics | null;
}

/** The job's running state during one attempt. */
interface Attempt {
  id: string;
  signal: AbortSignal;
  log: Logger;
  record: JobRecord;
  metadata: CheckpointMetadata;
}

export class JobRunner {
  constructor(private readonly o: JobRunnerOptions) {}

  /**
   * Runs one attempt of job `id` to completion; null when the job had already ended. Throws
   * JobStopped when stopped from outside (the signal's reason, or 'cancelled' when the job was
   * deleted), JobError('invalid_audio') for bad input, and engine errors (CircuitBreakerOpenError
   * included) for the queue to retry.
   */
  async run(id: string, signal: AbortSignal): Promise<Transcript | null> {
    const { store, checkpoints } = this.o;
    const record = await store.startAttempt(id);
    if (!record) throw new JobStopped('cancelled');
    const log = this.o.logger.child({ job_id: id, attempt: record.status.attempts });
    if (record.status.state === 'completed' || record.status.state === 'failed') {
      log.info({ state: record.status.state }, 'job already ended; nothing to do');
      return null;
    }
    try {
      const latest = await checkpoints.getLatestCheckpoint<TranscriptSegment, CheckpointMetadata>(id);
      if (latest) {
        // Segments an earlier attempt completed after its last checkpoint are redone, not duplicated.
        await checkpoints.cleanupOldCheckpoints(id);
        this.o.metrics?.checkpointRecoveries.inc();
        await this.update(id, { resumed: true });
        log.info({ stage: latest.stage, segment_index: latest.segment_index }, 'resuming from checkpoint');
      }
      const attempt: Attempt = { id, signal, log, record, metadata: { ...latest?.partial_data.metadata } };
      await mkdir(this.o.paths.workDir(id), { recursive: true });
      await this.normalize(attempt, latest);
      await this.validate(attempt);
      const segments = await this.transcribe(attempt, latest);
      return await this.format(attempt, segments);
    } catch (error) {
      // Whatever failed inside, an outside stop is reported as the stop.
      if (signal.aborted) throw signal.reason;
      throw error;
    } finally {
      checkpoints.forget(id);
    }
  }

  private async normalize(a: Attempt, latest: JobCheckpoint | null): Promise<void> {
    const wav = this.o.paths.normalized(a.id);
    if (latest && stageAtLeast(latest.stage, 'normalize') && (await exists(wav))) return;
    await this.update(a.id, { stage: 'normalize', progress: latest?.progress ?? STAGE_DONE_PROGRESS.upload });
    const tmp = wav + '.tmp.wav';
    await rm(tmp, { force: true });
    try {
      await this.o.audio.normalize(this.o.paths.upload(a.id), tmp, {
        signal: a.signal,
        maxDurationSec: this.o.maxDurationSec,
      });
    } catch (error) {
      throw this.asInputError(a, error, 'cannot decode the upload');
    }
    // Renamed only once whole, so an existing WAV is always a complete one.
    await rename(tmp, wav);
    // A later checkpoint (its WAV lost with the disk) already holds more than this one would.
    if (!latest) await this.save(a, 'normalize', STAGE_DONE_PROGRESS.normalize, -1, []);
    a.log.debug('normalized');
  }

  private async validate(a: Attempt): Promise<void> {
    if (a.metadata.duration !== undefined) return;
    await this.update(a.id, { stage: 'validate', progress: STAGE_DONE_PROGRESS.normalize });
    let duration: number;
    try {
      duration = await this.o.audio.probeDuration(this.o.paths.normalized(a.id), { signal: a.signal });
    } catch (error) {
      throw this.asInputError(a, error, 'cannot read the audio duration');
    }
    if (!(Number.isFinite(duration) && duration > 0)) {
      throw new JobError('invalid_audio', 'the audio is empty');
    }
    if (duration > this.o.maxDurationSec) {
      // Normalize stops a second past the limit, so the length beyond it is unknown.
      throw new JobError(
        'invalid_audio',
        `the audio lasts more than ${Math.round(this.o.maxDurationSec)} s; the limit is ${Math.round(this.o.maxDurationSec)} s`,
      );
    }
    a.metadata.duration = duration;
    await this.save(a, 'validate', STAGE_DONE_PROGRESS.validate, -1, []);
  }

  private async transcribe(a: Attempt, latest: JobCheckpoint | null): Promise<TranscriptSegment[]> {
    const { store, audio, paths, engine } = this.o;
    const wav = paths.normalized(a.id);
    let plan = a.record.plan;
    if (!plan) {
      plan = await audio.planSegments(wav, a.metadata.duration!, { signal: a.signal });
      if (!(await store.setPlan(a.id, plan))) throw new JobStopped('cancelled');
    }
    const total = plan.length;
    a.metadata.segments_total = total;
    const resumeFrom = latest?.stage === 'transcribe' ? latest : null;
    const segments: TranscriptSegment[] = resumeFrom ? resumeFrom.partial_data.segments : [];
    const first = resumeFrom ? resumeFrom.segment_index + 1 : 0;
    let savedThrough = first - 1;
    let done = first;
    await this.update(a.id, {
      stage: 'transcribe',
      segments_total: total,
      segments_done: done,
      progress: transcribeProgress(done, total),
      audio_duration: round3(a.metadata.duration ?? 0),
    });
    // This attempt's speed, for the client's ETA: audio seconds done per second spent on them.
    let audioSec = 0;
    let busyMs = 0;
    try {
      for (let i = first; i < total; i++) {
        if (a.signal.aborted) throw a.signal.reason;
        const startedAt = performance.now();
        segments.push(...(await this.transcribeSegment(a, i, plan[i]!, engine)));
        busyMs += performance.now() - startedAt;
        audioSec += plan[i]!.end - plan[i]!.start;
        done = i + 1;
        const progress = transcribeProgress(done, total);
        const speed = busyMs > 0 ? Math.round((audioSec / (busyMs / 1000)) * 100) / 100 : null;
        await this.update(a.id, { segments_done: done, progress, transcribe_speed: speed || null });
        if (done === total || this.o.checkpoints.shouldSave(a.id, i)) {
          await this.save(a, 'transcribe', progress, i, segments);
          savedThrough = i;
        }
      }
    } catch (error) {
      // Keep what this attempt completed (shutdown, engine failure, open breaker), so the next
      // one starts after it. A cancelled job keeps nothing, and after losing the lease another
      // worker owns the checkpoints, so touch nothing.
      const stop: unknown = a.signal.aborted ? a.signal.reason : null;
      const keep = (stop === null || isJobStopped(stop, 'shutdown')) && !isJobStopped(error, 'cancelled');
      if (keep && done - 1 > savedThrough) {
        await this.save(a, 'transcribe', transcribeProgress(done, total), done - 1, segments).catch((e) =>
          a.log.warn({ err: e }, 'could not checkpoint after a failure'),
        );
      }
      throw error;
    }
    return segments;
  }

  private async transcribeSegment(
    a: Attempt,
    index: number,
    span: PlannedSegment,
    engine: Transcriber,
  ): Promise<TranscriptSegment[]> {
    const file = this.o.paths.segment(a.id, index);
    await this.o.audio.cutSegment(this.o.paths.normalized(a.id), span.start, span.end, file, {
      signal: a.signal,
    });
    const startedAt = performance.now();
    try {
      const language = a.record.language ?? a.metadata.language;
      const prompt = a.record.prompt ?? undefined;
      const result = await engine.transcribe(file, { language, prompt, signal: a.signal });
      const seconds = (performance.now() - startedAt) / 1000;
      this.o.metrics?.segmentDuration.observe(seconds);
      // The first segment settles the language; later segments and attempts reuse it.
      a.metadata.language ??= a.record.language ?? result.language;
      // Counted per transcription call: tests check resumed jobs redo no more than allowed.
      a.log.info({ segment: index, seconds: round3(seconds) }, 'segment transcribed');
      return offsetTranscript(span, result.segments).map((s) => ({
        start: s.start,
        end: s.end,
        text: s.text.trim(),
      }));
    } finally {
      await rm(file, { force: true });
    }
  }

  private async format(a: Attempt, segments: TranscriptSegment[]): Promise<Transcript> {
    await this.update(a.id, { stage: 'format', progress: STAGE_DONE_PROGRESS.transcribe });
    const transcript: Transcript = {
      job_id: a.id,
      language: a.metadata.language ?? a.record.language ?? 'unknown',
      duration: round3(a.metadata.duration ?? 0),
      text: joinText(segments),
      segments,
    };
    if (!(await this.o.store.complete(a.id, transcript))) throw new JobStopped('cancelled');
    await Promise.all([this.o.checkpoints.deleteAll(a.id), this.o.paths.removeJobFiles(a.id)]);
    a.log.info({ segments: segments.length, duration: transcript.duration }, 'job completed');
    return transcript;
  }

  private async save(
    a: Attempt,
    stage: 'normalize' | 'validate' | 'transcribe',
    progress: number,
    segmentIndex: number,
    segments: readonly TranscriptSegment[],
  ): Promise<void> {
    await this.o.checkpoints.saveCheckpoint({
      jobId: a.id,
      stage,
      progress,
      segmentIndex,
      data: { segments, metadata: a.metadata },
    });
  }

  private async update(id: string, update: StatusUpdate): Promise<void> {
    if (!(await this.o.store.update(id, update))) throw new JobStopped('cancelled');
  }

  /**
   * An input the media layer cannot read is the client's problem: invalid_audio, never retried.
   * The message goes to the client, so it holds the media layer's own invalid_audio wording at
   * most: a tool's output names server paths, and whether a file a playlist named exists. That
   * goes to the log.
   */
  private asInputError(a: Attempt, error: unknown, what: string): unknown {
    if (a.signal.aborted) return a.signal.reason;
    const code = codeOf(error);
    // ffmpeg missing, or too slow, is the server's problem, not the input's: retry later.
    if (code !== undefined && SERVER_FAULTS.has(code)) return error;
    a.log.info({ err: error }, `input refused: ${what}`);
    const reason = isMediaError(error, 'invalid_audio') ? error.message : 'not decodable audio';
    return new JobError('invalid_audio', `${what}: ${reason}`, { cause: error });
  }
}

/** Media and system error codes that say nothing about the input. */
const SERVER_FAULTS = new Set(['engine_unavailable', 'timeout', 'ENOENT', 'EACCES', 'EMFILE', 'ENOSPC']);

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
