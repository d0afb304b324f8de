// Real uploads through the real media layer (ffmpeg) with a fake engine: what each kind of bad
// audio does to a job, and that good audio gets through normalize, validate and the planner.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAudioTools } from '../../../backend/jobs/media-adapters.js';
import { randomBytesFile, tonePattern, truncatedCopy } from '../../helpers/audio.js';
import { startTestBackend, type TestBackend } from '../../helpers/backend.js';
import { deletePrefix, newRedis } from '../../helpers/redis.js';
import { waitFor } from '../../helpers/wait.js';

let backend: TestBackend;
let redis: Redis;
let dir: string;

beforeAll(async () => {
  redis = newRedis();
  dir = await mkdtemp(join(tmpdir(), 'fg-media-'));
  backend = await startTestBackend({ audio: createAudioTools(), maxDurationSec: 120 });
});
afterAll(async () => {
  await backend.dispose();
  await deletePrefix(redis, backend.prefix);
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
});

async function run(file: string, type: string): Promise<Record<string, unknown>> {
  const form = new FormData();
  form.append('file', new Blob([await readFile(file)], { type }), 'upload');
  const res = await fetch(`${backend.url}/transcribe`, { method: 'POST', body: form });
  expect(res.status).toBe(202);
  const { job_id: id } = (await res.json()) as { job_id: string };
  return waitFor(
    async () => {
      const s = (await (await fetch(`${backend.url}/status/${id}`)).json()) as Record<string, unknown>;
      return s.state === 'completed' || s.state === 'failed' ? s : null;
    },
    { timeoutMs: 20_000, what: `job ${id} to end` },
  );
}

describe('the pipeline on real audio (fake engine)', () => {
  it('transcribes a tone pattern, cut at its silences', async () => {
    const status = await run(await tonePattern(join(dir, 'ok.mp3'), { totalSec: 65 }), 'audio/mpeg');
    expect(status).toMatchObject({ state: 'completed', resumed: false });
    const total = status.segments_total as number;
    expect(total).toBeGreaterThanOrEqual(2);
    const result = (await (await fetch(`${backend.url}/result/${status.job_id}`)).json()) as {
      duration: number;
      segments: { start: number; end: number }[];
    };
    // Two fake text segments per audio segment: every other one starts where a cut was made.
    expect(result.segments).toHaveLength(2 * total);
    const cuts = result.segments.filter((_, i) => i > 0 && i % 2 === 0).map((s) => s.start);
    // Each inside a silence: 5 s of tone, then 1 s of silence, repeated.
    for (const cut of cuts) expect(cut % 6).toBeGreaterThanOrEqual(5);
    expect(result.duration).toBeCloseTo(65, 1);
    expect(result.segments.at(-1)!.end).toBeCloseTo(65, 1);
  });

  it('random bytes fail at validate with invalid_audio', async () => {
    const status = await run(await randomBytesFile(join(dir, 'noise.bin')), 'application/octet-stream');
    expect(status).toMatchObject({
      state: 'failed',
      stage: 'validate',
      attempts: 1,
      error: { code: 'invalid_audio' },
    });
  });

  it('a WAV cut short to its header fails with invalid_audio', async () => {
    const wav = await tonePattern(join(dir, 'full.wav'), { totalSec: 5 });
    const status = await run(await truncatedCopy(wav, join(dir, 'header.wav'), 44), 'audio/wav');
    expect(status).toMatchObject({ state: 'failed', stage: 'validate', error: { code: 'invalid_audio' } });
  });

  it('a truncated MP3 yields what it holds', async () => {
    const mp3 = await tonePattern(join(dir, 'long.mp3'), { totalSec: 40 });
    const half = (await readFile(mp3)).length >> 1;
    const status = await run(await truncatedCopy(mp3, join(dir, 'half.mp3'), half), 'audio/mpeg');
    expect(status).toMatchObject({ state: 'completed', segments_total: 1 });
  });

  it('audio over MAX_DURATION fails with invalid_audio', async () => {
    const status = await run(await tonePattern(join(dir, 'long.wav'), { totalSec: 121 }), 'audio/wav');
    expect(status).toMatchObject({ state: 'failed', stage: 'validate', error: { code: 'invalid_audio' } });
    expect((status.error as { message: string }).message).toMatch(/limit is 120 s/);
  });
});
