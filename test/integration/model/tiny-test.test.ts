// `floodgate model tiny-test`: the offline model a new user runs a first job with. The file the command
// writes must be the generator's bytes, and a real backend (whisper.cpp, ffmpeg, Redis) must take a job
// through every stage with it and WHISPER_FAST_DECODE=1, as the README says.
import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTinyGgmlModel } from '../../../backend/model/tiny-model.js';
import { tonePattern } from '../../helpers/audio.js';
import { type BackendProcess, spawnBackend } from '../../helpers/backend-process.js';
import { runCli, tempDir } from '../../helpers/proxy.js';
import { waitFor } from '../../helpers/wait.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('floodgate model tiny-test', () => {
  let dir: string;
  let backend: BackendProcess | null = null;

  beforeAll(async () => {
    dir = await tempDir('tiny-test');
  });

  afterAll(async () => {
    await backend?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the tiny model under --dir and says how to run it', async () => {
    const r = await runCli(['model', 'tiny-test', '--dir', join(dir, 'models')]);
    const path = join(dir, 'models', 'ggml-tiny-test.bin');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`WHISPER_MODEL=${path} WHISPER_FAST_DECODE=1 npm start`);
    expect((await readFile(path)).equals(buildTinyGgmlModel())).toBe(true);
  });

  it('is a model the backend runs a job to completion with', async () => {
    const model = join(dir, 'models', 'ggml-tiny-test.bin');
    backend = await spawnBackend({
      redisUrl: REDIS_URL,
      prefix: `floodgate-test:tiny-${randomUUID()}:`,
      dataDir: join(dir, 'data'),
      model,
    });
    const audio = await readFile(await tonePattern(join(dir, 'tones.wav'), { totalSec: 4 }));
    const submitted = await request(`${backend.url}/transcribe`, {
      method: 'POST',
      headers: { 'content-type': 'audio/wav' },
      body: audio,
    });
    expect(submitted.statusCode).toBe(202);
    const { job_id } = (await submitted.body.json()) as { job_id: string };

    const status = await waitFor(
      async () => {
        const s = (await (await request(`${backend!.url}/status/${job_id}`)).body.json()) as {
          state: string;
          error: unknown;
        };
        return s.state === 'completed' || s.state === 'failed' ? s : null;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: 'the job to finish' },
    );
    expect(status).toMatchObject({ state: 'completed', error: null });
    const result = await request(`${backend.url}/result/${job_id}?format=json`);
    expect(result.statusCode).toBe(200);
    const transcript = (await result.body.json()) as { language: string; segments: unknown[] };
    expect(transcript.language).toBe('en');
    expect(transcript.segments.length).toBeGreaterThan(0);
  });
});
