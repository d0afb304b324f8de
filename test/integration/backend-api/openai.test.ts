// The OpenAI-compatible API with the official `openai` SDK, through a real proxy running the
// default policy (config/proxy.yaml: its routes, limits and upstreams, the store in memory), in
// front of a real backend with real Redis, ffmpeg and whisper.cpp on the tiny generated model.
// Smaller backends with a fake engine cover what needs control over a job's timing.
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { OpenAIErrorBody } from '../../../backend/api/openai-errors.js';
import { isJobId } from '../../../backend/jobs/ids.js';
import { modelName } from '../../../backend/main.js';
import { projectRoot } from '../../../core/paths.js';
import { randomBytesFile, tonePattern } from '../../helpers/audio.js';
import { startTestBackend, type TestBackend } from '../../helpers/backend.js';
import { type BackendProcess, spawnBackend } from '../../helpers/backend-process.js';
import { tinyGgmlModelPath } from '../../helpers/ggml-model.js';
import { type PolicyDoc, startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { deletePrefix, newRedis, REDIS_URL, uniquePrefix } from '../../helpers/redis.js';
import { freePort } from '../../helpers/redis-server.js';
import { waitFor } from '../../helpers/wait.js';

/** What the SDK throws for an error status. */
type ApiErr = InstanceType<typeof OpenAI.APIError> & { headers: Headers };

const root = projectRoot();
const MAX_UPLOAD = 2 * 1024 * 1024;
let redis: Redis;
let dir: string;
let wav: string;
let model: string;
let backend: TestBackend;
let proxy: TestProxy;
let client: OpenAI;

/**
 * The default policy, with its upstreams pointed at `url`, its counters in memory, and no burst
 * window (this file sends more than its 10 uploads a minute).
 */
async function defaultPolicy(url: string): Promise<PolicyDoc> {
  const doc = parse(await readFile(join(root, 'config', 'proxy.yaml'), 'utf8')) as PolicyDoc;
  const upstreams = doc.upstreams as Record<string, { url: string }>;
  for (const upstream of Object.values(upstreams)) upstream.url = url;
  for (const route of doc.routes as { limits?: { windows?: unknown } }[]) delete route.limits?.windows;
  const { listen: _l, admin: _a, ...rest } = doc;
  return { ...rest, store: { type: 'memory' } };
}

beforeAll(async () => {
  if (!existsSync(join(root, '.cache', 'whisper', 'bin', 'main'))) {
    throw new Error('whisper.cpp is not built; run backend/whisper/build.sh');
  }
  redis = newRedis();
  dir = await mkdtemp(join(tmpdir(), 'fg-openai-'));
  model = await tinyGgmlModelPath();
  wav = await tonePattern(join(dir, 'tones.wav'), { totalSec: 40 });
  backend = await startTestBackend({
    transcriber: undefined,
    audio: undefined,
    whisperModel: model,
    whisperFastDecode: true,
    whisperThreads: 1,
    maxUploadBytes: MAX_UPLOAD,
    transcriptionWaitMs: 120_000,
  });
  proxy = await startTestProxy(await defaultPolicy(backend.url));
  client = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120_000 });
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await backend?.dispose();
  await deletePrefix(redis, backend.prefix);
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
});

async function nativeResult(id: string, format: string): Promise<string> {
  const res = await fetch(`${proxy.url}/result/${id}?format=${format}`);
  expect(res.status).toBe(200);
  return res.text();
}

function waiting(): Promise<number> {
  return backend.metrics.registry
    .getSingleMetric('transcription_requests_waiting')!
    .get()
    .then((m) => m.values[0]?.value ?? 0);
}

describe('POST /v1/audio/transcriptions with the openai SDK, through the proxy', () => {
  // One job answers every format: the key finds it again, and the answer is rendered per request.
  const key = `formats-${process.pid}`;
  let jobId: string;

  it('json: {"text"} once the transcript is ready, from a durable job', async () => {
    const { data, response } = await client.audio.transcriptions
      .create(
        { file: createReadStream(wav), model: 'whisper-1', response_format: 'json', language: 'en' },
        { headers: { 'Idempotency-Key': key } },
      )
      .withResponse();
    expect(response.status).toBe(200);
    jobId = response.headers.get('x-job-id')!;
    expect(isJobId(jobId)).toBe(true);
    const stored = JSON.parse(await nativeResult(jobId, 'json')) as { text: string; duration: number };
    expect(data).toEqual({ text: stored.text, usage: { type: 'duration', seconds: 40 } });
    expect(data.text.length).toBeGreaterThan(0);
    // The job is the native API's: /status shows it completed.
    const status = (await (await fetch(`${proxy.url}/status/${jobId}`)).json()) as Record<string, unknown>;
    expect(status).toMatchObject({ state: 'completed', attempts: 1 });
  });

  it('text, srt and vtt: plain text, as the native formats render the same job', async () => {
    const create = (response_format: 'text' | 'srt' | 'vtt') =>
      client.audio.transcriptions
        .create(
          { file: createReadStream(wav), model: 'whisper-1', response_format, language: 'en' },
          { headers: { 'Idempotency-Key': key } },
        )
        .withResponse();
    const text = await create('text');
    expect(text.response.headers.get('x-job-id')).toBe(jobId);
    expect(text.response.headers.get('content-type')).toMatch(/^text\/plain/);
    const stored = JSON.parse(await nativeResult(jobId, 'json')) as { text: string };
    expect(text.data).toBe(`${stored.text}\n`);

    const srt = await create('srt');
    expect(srt.data).toBe(await nativeResult(jobId, 'srt'));
    expect(srt.data).toMatch(/^1\n00:00:\d\d,\d{3} --> 00:00:\d\d,\d{3}\n/);

    const vtt = await create('vtt');
    expect(vtt.data).toBe(await nativeResult(jobId, 'vtt'));
    expect(vtt.data).toMatch(/^WEBVTT\n\n00:00:\d\d\.\d{3} --> /);
  });

  it("verbose_json: OpenAI's shape, segments from whisper.cpp", async () => {
    const { data, response } = await client.audio.transcriptions
      .create(
        {
          file: createReadStream(wav),
          model: modelName(model),
          response_format: 'verbose_json',
          language: 'en',
        },
        { headers: { 'Idempotency-Key': key } },
      )
      .withResponse();
    expect(response.headers.get('x-job-id')).toBe(jobId);
    const stored = JSON.parse(await nativeResult(jobId, 'json')) as {
      duration: number;
      segments: { start: number; end: number; text: string }[];
    };
    expect(data).toMatchObject({ task: 'transcribe', language: 'english', duration: stored.duration });
    expect(data.duration).toBeCloseTo(40, 1);
    expect(data.segments).toHaveLength(stored.segments.length);
    data.segments!.forEach((s, i) => {
      const own = stored.segments[i]!;
      expect(s).toEqual({
        id: i,
        seek: Math.round(own.start * 100),
        start: own.start,
        end: own.end,
        text: ` ${own.text}`,
        tokens: [],
        temperature: 0,
        avg_logprob: 0,
        compression_ratio: expect.any(Number),
        no_speech_prob: 0,
      });
      expect(s.compression_ratio).toBeGreaterThan(0);
    });
  });

  it('a new request without a key makes a new job; a prompt starting with "-" stays a prompt', async () => {
    const { data, response } = await client.audio.transcriptions
      .create({
        file: createReadStream(wav),
        model: 'whisper-1',
        response_format: 'text',
        prompt: '-l xx --model /etc/passwd',
        temperature: 0.2,
      })
      .withResponse();
    const id = response.headers.get('x-job-id')!;
    expect(id).not.toBe(jobId);
    expect(typeof data).toBe('string');
    expect(await redis.hget(`${backend.prefix}job:${id}`, 'prompt')).toBe('-l xx --model /etc/passwd');
  });

  it('models.list and models.retrieve: whisper-1 and the installed model', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['whisper-1', modelName(model)]);
    expect(list.data[0]).toMatchObject({ object: 'model', owned_by: 'floodgate' });
    expect((await client.models.retrieve('whisper-1')).id).toBe('whisper-1');
    await expect(client.models.retrieve('gpt-4o')).rejects.toMatchObject({
      status: 400,
      error: { code: 'model_not_found' },
    });
  });
});

describe('errors the SDK parses', () => {
  async function failure(body: OpenAI.Audio.TranscriptionCreateParamsNonStreaming) {
    try {
      await client.audio.transcriptions.create(body);
    } catch (error) {
      return error as ApiErr;
    }
    throw new Error('expected an error');
  }

  it('400 model_not_found for a model this server does not have', async () => {
    const err = await failure({ file: createReadStream(wav), model: 'gpt-4o-transcribe' });
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.status).toBe(400);
    expect(err.error).toEqual({
      message: expect.stringContaining('"gpt-4o-transcribe" does not exist'),
      type: 'invalid_request_error',
      param: 'model',
      code: 'model_not_found',
    });
  });

  it('400 for a bad response_format, temperature, language, prompt or stream', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ response_format: 'xml' }, 'response_format'],
      [{ temperature: 2 }, 'temperature'],
      [{ language: 'klingon' }, 'language'],
      [{ prompt: 'a\u0000b' }, 'prompt'],
      [{ stream: true }, 'stream'],
    ];
    for (const [extra, param] of cases) {
      const err = await failure({ file: createReadStream(wav), model: 'whisper-1', ...extra } as never);
      expect(err.status, param).toBe(400);
      expect(err.error, param).toMatchObject({ type: 'invalid_request_error', param, code: 'bad_request' });
    }
    // A prompt over the form's 1 KiB field limit.
    const long = await failure({ file: createReadStream(wav), model: 'whisper-1', prompt: 'x'.repeat(1025) });
    expect(long.status).toBe(400);
    expect(long.error).toMatchObject({ code: 'bad_request', message: 'Field "prompt" is too long' });
  });

  it('400 without a file, 415 for a file that is not audio, 413 over MAX_UPLOAD', async () => {
    const noFile = new FormData();
    noFile.append('model', 'whisper-1');
    const raw = async (body: FormData) => {
      const res = await fetch(`${proxy.url}/v1/audio/transcriptions`, { method: 'POST', body });
      return { status: res.status, body: (await res.json()) as { error: Record<string, unknown> } };
    };
    expect(await raw(noFile)).toMatchObject({
      status: 400,
      body: { error: { type: 'invalid_request_error', param: 'file', code: 'no_file' } },
    });
    const text = new FormData();
    text.append('file', new Blob(['hello'], { type: 'text/plain' }), 'a.txt');
    text.append('model', 'whisper-1');
    expect(await raw(text)).toMatchObject({
      status: 415,
      body: { error: { param: 'file', code: 'unsupported_media_type' } },
    });
    const big = await failure({
      file: await OpenAI.toFile(Buffer.alloc(MAX_UPLOAD + 1), 'big.wav', { type: 'audio/wav' }),
      model: 'whisper-1',
    });
    expect(big.status).toBe(413);
    expect(big.error).toMatchObject({ code: 'payload_too_large', param: 'file' });
  });

  it('a model name with CR/LF is refused inside the JSON body, never echoed into a header', async () => {
    const body = new FormData();
    body.append('file', new Blob([await readFile(wav)], { type: 'audio/wav' }), 'a.wav');
    body.append('model', 'whisper-1\r\nX-Evil: 1');
    const res = await fetch(`${proxy.url}/v1/audio/transcriptions`, { method: 'POST', body });
    expect(res.status).toBe(400);
    expect(res.headers.get('x-evil')).toBeNull();
    expect(((await res.json()) as OpenAIErrorBody).error).toMatchObject({
      code: 'model_not_found',
      message: expect.stringContaining('"whisper-1\\r\\nX-Evil: 1"'),
    });
  });

  it('422 for audio that does not decode, naming its job', async () => {
    const noise = await randomBytesFile(join(dir, 'noise.wav'));
    const err = await failure({ file: createReadStream(noise), model: 'whisper-1' });
    expect(err.status).toBe(422);
    expect(err.headers.get('x-should-retry')).toBe('false');
    const id = err.headers.get('x-job-id');
    expect(err.error).toMatchObject({
      type: 'invalid_request_error',
      param: 'file',
      code: 'job_failed',
      job_id: id,
      result_url: `/result/${id}`,
    });
  });
});

describe('a client that goes away while it waits', () => {
  it('leaves the job running to completion and nothing waiting behind', async () => {
    const long = await tonePattern(join(dir, 'long.wav'), { totalSec: 60 });
    const before = backend.lines.filter((l) => l.msg === 'job queued').length;
    const gone = new AbortController();
    const call = client.audio.transcriptions.create(
      { file: createReadStream(long), model: 'whisper-1' },
      { signal: gone.signal },
    );
    const queued = await waitFor(
      async () =>
        (await waiting()) === 1 ? backend.lines.filter((l) => l.msg === 'job queued')[before] : null,
      { timeoutMs: 30_000, what: 'the request to wait for its job' },
    );
    gone.abort();
    await expect(call).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    await waitFor(async () => (await waiting()) === 0, { timeoutMs: 10_000, what: 'the waiter to go' });
    const id = queued.job_id as string;
    const done = await waitFor(
      async () => {
        const s = (await (await fetch(`${backend.url}/status/${id}`)).json()) as Record<string, unknown>;
        return s.state === 'completed' ? s : null;
      },
      { timeoutMs: 60_000, what: `job ${id} to complete` },
    );
    expect(done).toMatchObject({ state: 'completed', attempts: 1 });
    expect(backend.lines.some((l) => l.msg === 'client went away while waiting; the job goes on')).toBe(true);
  });
});

describe('the wait, with a fake engine', () => {
  /** Backends whose jobs the test holds and releases: one that waits 300 ms, one that waits a minute. */
  let fake: TestBackend;
  let patient: TestBackend;
  const fakeBackend = async (transcriptionWaitMs: number) => {
    const fakeDir = await mkdtemp(join(tmpdir(), 'fg-openai-fake-'));
    await writeFile(join(fakeDir, 'ggml-fake.bin'), 'not a model');
    return startTestBackend({
      dataDir: fakeDir,
      whisperModel: join(fakeDir, 'ggml-fake.bin'),
      transcriptionWaitMs,
    });
  };
  beforeAll(async () => {
    fake = await fakeBackend(300);
    patient = await fakeBackend(60_000);
  });
  afterAll(async () => {
    for (const b of [fake, patient]) {
      await b.dispose();
      await deletePrefix(redis, b.prefix);
      await rm(b.dataDir, { recursive: true, force: true });
    }
  });

  it('408 with the job id when the job outlasts OPENAI_WAIT; the same key then gets the transcript', async () => {
    const direct = new OpenAI({ baseURL: `${fake.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const held = fake.transcriber.hold(0);
    const file = () => OpenAI.toFile(Buffer.from('30'), 'fake.wav', { type: 'audio/wav' });
    const first = await direct.audio.transcriptions.create({ file: await file(), model: 'whisper-1' }).then(
      () => null,
      (e: ApiErr) => e,
    );
    await held;
    expect(first!.status).toBe(408);
    // Without a key, a retry would start another job: the SDK is told not to.
    expect(first!.headers.get('x-should-retry')).toBe('false');
    const id = first!.headers.get('x-job-id')!;
    expect(first!.error).toMatchObject({
      type: 'invalid_request_error',
      code: 'wait_timeout',
      param: null,
      job_id: id,
      status_url: `/status/${id}`,
      result_url: `/result/${id}`,
    });
    expect((first!.error as { message: string }).message).toContain('Idempotency-Key');

    const keyed = await direct.audio.transcriptions
      .create({ file: await file(), model: 'whisper-1' }, { headers: { 'Idempotency-Key': 'k1' } })
      .then(
        () => null,
        (e: ApiErr) => e,
      );
    expect(keyed!.status).toBe(408);
    expect(keyed!.headers.get('x-should-retry')).toBe('true');
    const keyedId = keyed!.headers.get('x-job-id')!;
    fake.transcriber.release(0);
    // Once the job has ended, the same request answers at once, whatever OPENAI_WAIT is.
    await waitFor(
      async () =>
        ((await (await fetch(`${fake.url}/status/${keyedId}`)).json()) as { state: string }).state ===
        'completed',
      { timeoutMs: 30_000, what: `job ${keyedId} to complete` },
    );
    const again = await direct.audio.transcriptions
      .create({ file: await file(), model: 'whisper-1' }, { headers: { 'Idempotency-Key': 'k1' } })
      .withResponse();
    expect(again.response.headers.get('x-job-id')).toBe(keyedId);
    expect(again.data.text).toBe('words at 0 more at 15');
    expect(
      await fake.metrics.registry.getSingleMetric('transcription_requests_waiting')!.get(),
    ).toMatchObject({
      values: [{ value: 0 }],
    });
  });

  it('two requests with one key wait for one job, and both get its transcript', async () => {
    const direct = new OpenAI({ baseURL: `${patient.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const held = patient.transcriber.hold(30);
    const send = async () =>
      direct.audio.transcriptions
        .create(
          {
            file: await OpenAI.toFile(Buffer.from('45'), 'a.wav', { type: 'audio/wav' }),
            model: 'whisper-1',
          },
          { headers: { 'Idempotency-Key': 'twice' }, timeout: 30_000 },
        )
        .withResponse();
    const gauge = patient.metrics.registry.getSingleMetric('transcription_requests_waiting')!;
    const waitingNow = async () => (await gauge.get()).values[0]?.value ?? 0;
    const first = send();
    await held;
    const second = send();
    await waitFor(async () => (await waitingNow()) === 2, { what: 'both requests to wait' });
    patient.transcriber.release(30);
    const [a, b] = await Promise.all([first, second]);
    expect(b.response.headers.get('x-job-id')).toBe(a.response.headers.get('x-job-id'));
    expect(a.data.text).toBe('words at 0 more at 15 words at 30 more at 37.5');
    expect(b.data).toEqual(a.data);
    expect(await waitingNow()).toBe(0);
  });

  it('503 with the job id when the backend shuts down mid-wait', async () => {
    const stopping = await fakeBackend(60_000);
    try {
      const held = stopping.transcriber.hold(0);
      const direct = new OpenAI({ baseURL: `${stopping.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const call = direct.audio.transcriptions
        .create({
          file: await OpenAI.toFile(Buffer.from('30'), 'a.wav', { type: 'audio/wav' }),
          model: 'whisper-1',
        })
        .then(
          () => null,
          (e: ApiErr) => e,
        );
      await held;
      const shutdown = stopping.shutdown();
      const err = await call;
      expect(err!.status).toBe(503);
      expect(err!.error).toMatchObject({
        type: 'server_error',
        code: 'unavailable',
        job_id: expect.any(String),
      });
      stopping.transcriber.release(0);
      await shutdown;
    } finally {
      await stopping.dispose();
      await deletePrefix(redis, stopping.prefix);
      await rm(stopping.dataDir, { recursive: true, force: true });
    }
  });
});

describe('a backend without a model', () => {
  it('lists no model and answers 503 in OpenAI shape', async () => {
    const bare = await startTestBackend({ transcriber: undefined, audio: undefined });
    try {
      const direct = new OpenAI({ baseURL: `${bare.url}/v1`, apiKey: 'x', maxRetries: 0 });
      expect((await direct.models.list()).data).toEqual([]);
      const err = await direct.audio.transcriptions
        .create({ file: createReadStream(wav), model: 'whisper-1' })
        .then(
          () => null,
          (e: ApiErr) => e,
        );
      expect(err!.status).toBe(503);
      expect(err!.error).toMatchObject({ type: 'server_error', code: 'unavailable', param: null });
      expect((err!.error as { message: string }).message).not.toContain(bare.dataDir);
    } finally {
      await bare.dispose();
      await deletePrefix(redis, bare.prefix);
    }
  });
});

describe('a backend killed while a client waits', () => {
  it('the same Idempotency-Key, sent again after the restart, gets the resumed job', async () => {
    const prefix = uniquePrefix('openai-crash');
    const dataDir = await mkdtemp(join(tmpdir(), 'fg-openai-crash-'));
    const port = await freePort();
    const start = () =>
      spawnBackend({
        redisUrl: REDIS_URL,
        prefix,
        dataDir,
        model,
        port,
        env: { JOB_LEASE: '2s', CHECKPOINT_EVERY_SEGMENTS: '1' },
      });
    const long = await tonePattern(join(dir, 'crash.wav'), { totalSec: 100 });
    const front = await startTestProxy(await defaultPolicy(`http://127.0.0.1:${port}`));
    const sdk = new OpenAI({ baseURL: `${front.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120_000 });
    const create = () =>
      sdk.audio.transcriptions
        .create(
          { file: createReadStream(long), model: 'whisper-1', response_format: 'verbose_json' },
          { headers: { 'Idempotency-Key': 'crash-1' } },
        )
        .withResponse();
    let backendProcess: BackendProcess | null = await start();
    try {
      const first = create().then(
        () => null,
        (e: unknown) => e,
      );
      const transcribed = await waitFor(
        () => backendProcess!.lines.find((l) => l.msg === 'segment transcribed' && l.segment === 1),
        { timeoutMs: 60_000, intervalMs: 5, what: 'two segments transcribed' },
      );
      await backendProcess.kill('SIGKILL');
      // The proxy answers for the dead backend; the SDK sees a 502 in the proxy's own shape.
      expect(await first).toMatchObject({ status: 502 });

      backendProcess = await start();
      const again = await create();
      expect(again.response.headers.get('x-job-id')).toBe(transcribed.job_id);
      expect(again.data.duration).toBeCloseTo(100, 1);
      const status = (await (await fetch(`${front.url}/status/${transcribed.job_id}`)).json()) as object;
      expect(status).toMatchObject({ state: 'completed', resumed: true, attempts: 2 });
    } finally {
      await backendProcess?.kill();
      await front.close();
      await deletePrefix(redis, prefix);
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
