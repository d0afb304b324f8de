// The "Done when" of the backend issue: the backend as a real process with real Redis, ffmpeg and
// whisper.cpp (the tiny generated model). A job is SIGKILLed mid-transcription after some segments
// are checkpointed; the restarted process resumes it once the dead worker's lease expires. It must
// complete with resumed=true and exactly the segments of an uninterrupted run, and redo no more
// segments than the checkpoint interval allows.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../../core/paths.js';
import { tonePattern } from '../../helpers/audio.js';
import { type BackendProcess, spawnBackend } from '../../helpers/backend-process.js';
import { tinyGgmlModelPath } from '../../helpers/ggml-model.js';
import { deletePrefix, newRedis, REDIS_URL, uniquePrefix } from '../../helpers/redis.js';
import { waitFor } from '../../helpers/wait.js';

const EVERY_SEGMENTS = 2;
const AUDIO_SEC = 180;
const root = projectRoot();
const whisperBinary = join(root, '.cache', 'whisper', 'bin', 'main');

let redis: Redis;
let dataDir: string;
let audioFile: string;
let model: string;
const prefix = uniquePrefix('crash-resume');
const backends: BackendProcess[] = [];

beforeAll(async () => {
  if (!existsSync(whisperBinary)) {
    throw new Error(`whisper.cpp is not built at ${whisperBinary}; run backend/whisper/build.sh`);
  }
  redis = newRedis();
  dataDir = await mkdtemp(join(tmpdir(), 'fg-crash-'));
  model = await tinyGgmlModelPath();
  // 5 s tones and 1 s silences: the planner cuts inside silences, near every 30 s.
  audioFile = await tonePattern(join(tmpdir(), `fg-crash-input-${process.pid}.wav`), { totalSec: AUDIO_SEC });
});

afterAll(async () => {
  await Promise.all(backends.map((b) => b.kill()));
  await deletePrefix(redis, prefix);
  redis.disconnect();
  await rm(dataDir, { recursive: true, force: true });
  await rm(audioFile, { force: true });
});

/** The backend as its own process, checkpointing every EVERY_SEGMENTS segments, with a 2 s lease. */
async function startBackendProcess(): Promise<BackendProcess> {
  const backend = await spawnBackend({
    redisUrl: REDIS_URL,
    prefix,
    dataDir,
    model,
    env: {
      CHECKPOINT_EVERY_SEGMENTS: String(EVERY_SEGMENTS),
      CHECKPOINT_INTERVAL: '1h',
      JOB_LEASE: '2s',
    },
  });
  backends.push(backend);
  return backend;
}

async function submit(backend: BackendProcess): Promise<string> {
  const form = new FormData();
  form.append('file', new Blob([await readFile(audioFile)], { type: 'audio/wav' }), 'tones.wav');
  const res = await fetch(`${backend.url}/transcribe`, { method: 'POST', body: form });
  expect(res.status).toBe(202);
  return ((await res.json()) as { job_id: string }).job_id;
}

async function status(backend: BackendProcess, id: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${backend.url}/status/${id}`)).json()) as Record<string, unknown>;
}

async function waitCompleted(backend: BackendProcess, id: string): Promise<Record<string, unknown>> {
  return waitFor(
    async () => {
      const s = await status(backend, id);
      if (s.state === 'failed') throw new Error(`job failed: ${JSON.stringify(s.error)}`);
      return s.state === 'completed' ? s : null;
    },
    { timeoutMs: 90_000, intervalMs: 100, what: `job ${id} to complete` },
  );
}

/** Indices of the segments a process transcribed for a job, from its log lines. */
function transcribed(backend: BackendProcess, id: string): number[] {
  return backend.lines
    .filter((l) => l.msg === 'segment transcribed' && l.job_id === id)
    .map((l) => l.segment as number);
}

describe('crash and resume with real whisper.cpp', () => {
  it('a SIGKILLed job resumes after its last checkpoint and yields the uninterrupted transcript', async () => {
    const first = await startBackendProcess();

    // An uninterrupted run, for reference.
    const cleanId = await submit(first);
    const clean = await waitCompleted(first, cleanId);
    const total = clean.segments_total as number;
    expect(total).toBeGreaterThanOrEqual(5);
    expect(clean).toMatchObject({ resumed: false, attempts: 1, segments_done: total });
    const cleanResult = (await (await fetch(`${first.url}/result/${cleanId}`)).json()) as Record<
      string,
      unknown
    >;
    expect(transcribed(first, cleanId)).toEqual([...Array(total).keys()]);

    // The same audio again; kill the process once a transcription checkpoint exists and one more
    // segment is done past it, so the restart has work to redo.
    const id = await submit(first);
    const log = `${prefix}ckpt:{${id}}:log`;
    const checkpoint = await waitFor(
      async () => {
        const newest = await redis.lindex(log, 0);
        const record = newest ? (JSON.parse(newest) as { stage: string; segment_index: number }) : null;
        if (record?.stage !== 'transcribe') return null;
        return transcribed(first, id).includes(record.segment_index + 1) ? record : null;
      },
      { timeoutMs: 60_000, intervalMs: 5, what: 'a transcription checkpoint and one segment past it' },
    );
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    const beforeCrash = transcribed(first, id);
    const latest = JSON.parse((await redis.lindex(log, 0))!) as { segment_index: number };
    expect(latest.segment_index).toBeLessThan(total - 1); // killed mid-job, not after it
    expect(checkpoint.segment_index).toBeGreaterThanOrEqual(EVERY_SEGMENTS - 1);

    const second = await startBackendProcess();
    const done = await waitCompleted(second, id);
    expect(done).toMatchObject({
      state: 'completed',
      resumed: true,
      attempts: 2,
      segments_done: total,
      error: null,
    });
    const result = (await (await fetch(`${second.url}/result/${id}`)).json()) as Record<string, unknown>;
    expect(result.segments).toEqual(cleanResult.segments);
    expect(result.text).toBe(cleanResult.text);
    expect(result.duration).toBe(cleanResult.duration);

    // The restart began right after the last checkpoint, and redid at most the interval's worth.
    const afterCrash = transcribed(second, id);
    expect(afterCrash[0]).toBe(latest.segment_index + 1);
    expect([...new Set([...beforeCrash, ...afterCrash])].sort((a, b) => a - b)).toEqual([
      ...Array(total).keys(),
    ]);
    const twice = afterCrash.filter((i) => beforeCrash.includes(i));
    expect(twice.length).toBeLessThanOrEqual(EVERY_SEGMENTS);
    expect(second.lines.some((l) => l.msg === 'resuming from checkpoint' && l.job_id === id)).toBe(true);
    const metrics = await (await fetch(`${second.url}/metrics`)).text();
    expect(metrics).toMatch(/^checkpoint_recoveries_total 1$/m);

    // SIGTERM ends the process cleanly: running jobs are checkpointed and handed back.
    second.child.kill('SIGTERM');
    expect(await second.exited).toEqual({ code: 0, signal: null });
    // Two process starts, two jobs and a lease expiry: well past the default 30 s on a busy machine.
  }, 180_000);
});
