// A real backend process started without a part of its engine: no whisper model, or an ffmpeg
// that is not there (FFMPEG_PATH naming a file that does not exist). /readyz names what is
// missing; a job waits in the queue, and its status says why (a notice) without costing an
// attempt; `floodgate transcribe` prints that notice once and keeps waiting; and once the part is
// put in place the worker starts by itself and the job runs through ffmpeg and whisper.cpp.
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../../backend/media/find-executable.js';
import { tonePattern } from '../../helpers/audio.js';
import { type BackendProcess, spawnBackend } from '../../helpers/backend-process.js';
import { tinyGgmlModelPath } from '../../helpers/ggml-model.js';
import { PROJECT_ROOT } from '../../helpers/proxy.js';
import { deletePrefix, newRedis, REDIS_URL, uniquePrefix } from '../../helpers/redis.js';
import { waitFor } from '../../helpers/wait.js';

const NO_MODEL_NOTICE = 'no whisper model: set WHISPER_MODEL or run `npx floodgate model download base.en`';
const NO_FFMPEG_NOTICE =
  'ffmpeg is not installed on the server: install it (apt-get install ffmpeg, or brew install ffmpeg) or set FFMPEG_PATH';
const STATUS_FIELDS = [
  'job_id',
  'state',
  'stage',
  'progress',
  'segments_done',
  'segments_total',
  'resumed',
  'attempts',
  'error',
];

let redis: Redis;
let dir: string;
let audio: string;
let backend: BackendProcess | null = null;
const prefixes: string[] = [];
// Each test waits for the worker's engine re-check (every 10 s) and runs a job for real.

beforeAll(async () => {
  redis = newRedis();
  dir = await mkdtemp(join(tmpdir(), 'fg-engine-'));
  audio = await tonePattern(join(dir, 'tone.wav'), { totalSec: 3 });
});
afterEach(async () => {
  await backend?.kill('SIGTERM');
  backend = null;
});
afterAll(async () => {
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
});

async function start(name: string, o: { model: string; env?: Record<string, string> }) {
  const prefix = uniquePrefix(name);
  prefixes.push(prefix);
  const dataDir = join(dir, name);
  backend = await spawnBackend({ redisUrl: REDIS_URL, prefix, dataDir, model: o.model, env: o.env });
  return backend;
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function submit(url: string): Promise<string> {
  const form = new FormData();
  form.append('file', new Blob([await readFile(audio)], { type: 'audio/wav' }), 'tone.wav');
  const res = await fetch(`${url}/transcribe`, { method: 'POST', body: form });
  expect(res.status).toBe(202);
  return ((await res.json()) as { job_id: string }).job_id;
}

/** Puts a file in place whole, as a download finishing would. */
async function install(source: string, target: string): Promise<void> {
  await mkdir(join(target, '..'), { recursive: true });
  await copyFile(source, `${target}.part`);
  await rename(`${target}.part`, target);
}

describe('a backend without a whisper model', () => {
  it('says so in /readyz and in a queued job status; the client prints it once and waits until the model comes', async () => {
    const model = join(dir, 'models', 'ggml-tiny.bin');
    const b = await start('no-model', { model });

    const ready = await getJson(`${b.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({
      status: 'not_ready',
      redis: 'ok',
      ffmpeg: 'ok',
      ffprobe: 'ok',
      whisper: 'ok',
      model: `whisper model not found at ${model}: set WHISPER_MODEL to a ggml model file, or run \`npx floodgate model download base.en\``,
    });
    expect(ready.body.engine).toBe(ready.body.model);

    const child: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', 'cli/floodgate.ts', 'transcribe', audio, '--url', b.url, '--format', 'txt'],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    let exitCode: number | null | undefined;
    child.once('exit', (code) => {
      exitCode = code;
    });
    try {
      await waitFor(() => stderr.includes('cannot start job'), {
        timeoutMs: 30_000,
        what: 'the client to print the notice',
      });
      const id = /job ([0-9A-Za-z_-]+)/.exec(stderr)![1]!;
      const status = await getJson(`${b.url}/status/${id}`);
      // The status fields as they were, and the notice beside them.
      expect(Object.keys(status.body)).toEqual(expect.arrayContaining([...STATUS_FIELDS, 'notice']));
      expect(status.body).toMatchObject({
        state: 'queued',
        stage: 'upload',
        progress: 0.1,
        attempts: 0,
        error: null,
        notice: { code: 'engine_not_ready', message: NO_MODEL_NOTICE },
      });

      // The model arrives (as `floodgate model download` would leave it): the job runs, the client ends.
      await install(await tinyGgmlModelPath(), model);
      await waitFor(() => exitCode !== undefined, {
        timeoutMs: 90_000,
        intervalMs: 100,
        what: 'the client to end',
      });
      expect(exitCode).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(stderr.split(NO_MODEL_NOTICE)).toHaveLength(2);
    expect(stderr).toContain(
      `the server cannot start job ${/job ([0-9A-Za-z_-]+)/.exec(stderr)![1]} yet: ${NO_MODEL_NOTICE}. ` +
        'It waits in the queue and starts once that is fixed (Ctrl-C leaves it queued)',
    );
    expect(stderr).toContain('the server can run the job now');
    expect(stdout.endsWith('\n')).toBe(true);
    expect((await getJson(`${b.url}/readyz`)).status).toBe(200);
  }, 180_000);
});

describe('a backend whose ffmpeg is missing', () => {
  it('names it in /readyz, keeps the job queued with a notice, and runs it once ffmpeg is there', async () => {
    const ffmpeg = join(dir, 'bin', 'ffmpeg');
    const b = await start('no-ffmpeg', { model: await tinyGgmlModelPath(), env: { FFMPEG_PATH: ffmpeg } });

    const ready = await getJson(`${b.url}/readyz`);
    expect(ready.status).toBe(503);
    const detail = `ffmpeg FFMPEG_PATH=${ffmpeg} is not an executable file: install it (apt-get install ffmpeg, or brew install ffmpeg), or set FFMPEG_PATH to its path`;
    expect(ready.body).toEqual({
      status: 'not_ready',
      redis: 'ok',
      engine: detail,
      ffmpeg: detail,
      ffprobe: 'ok',
      whisper: 'ok',
      model: 'ok',
    });
    expect(b.lines.some((l) => String(l.msg).startsWith('engine not ready'))).toBe(true);

    const id = await submit(b.url);
    const waiting = await getJson(`${b.url}/status/${id}`);
    expect(waiting.body).toMatchObject({
      state: 'queued',
      attempts: 0,
      notice: { code: 'engine_not_ready', message: NO_FFMPEG_NOTICE },
    });

    // The real ffmpeg appears where FFMPEG_PATH says: the worker starts by itself and the job runs.
    await mkdir(join(dir, 'bin'), { recursive: true });
    await symlink((await findExecutable('ffmpeg'))!, ffmpeg);
    const done = await waitFor(
      async () => {
        const s = await getJson(`${b.url}/status/${id}`);
        return s.body.state === 'completed' || s.body.state === 'failed' ? s.body : null;
      },
      { timeoutMs: 90_000, intervalMs: 200, what: 'the job to end' },
    );
    expect(done).toMatchObject({ state: 'completed', attempts: 1, error: null });
    expect(done).not.toHaveProperty('notice');
    expect((await getJson(`${b.url}/readyz`)).body).toMatchObject({ status: 'ready', ffmpeg: 'ok' });
  }, 180_000);
});
