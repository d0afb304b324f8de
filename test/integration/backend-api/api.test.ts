// The backend HTTP API in-process, with real Redis and BullMQ and a fake engine.

import { readdir } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedFakeSegments, startTestBackend, type TestBackend } from '../../helpers/backend.js';
import { deletePrefix, newRedis } from '../../helpers/redis.js';
import { waitFor } from '../../helpers/wait.js';

const MAX_UPLOAD = 64 * 1024;
let backend: TestBackend;
let redis: Redis;

beforeAll(async () => {
  redis = newRedis();
  backend = await startTestBackend({ maxUploadBytes: MAX_UPLOAD, checkpointEverySegments: 1 });
});

afterAll(async () => {
  await backend.dispose();
  await deletePrefix(redis, backend.prefix);
  redis.disconnect();
});

async function post(body: RequestInit['body'], headers: Record<string, string> = {}) {
  const res = await fetch(`${backend.url}/transcribe`, { method: 'POST', body, headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function getJson(path: string) {
  const res = await fetch(backend.url + path);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function form(
  field: string,
  content: string | Uint8Array,
  type = 'audio/wav',
  extra: Record<string, string> = {},
) {
  const fd = new FormData();
  fd.append(field, new Blob([content], { type }), 'audio.wav');
  for (const [k, v] of Object.entries(extra)) fd.append(k, v);
  return fd;
}

async function uploadsLeft(): Promise<string[]> {
  return readdir(join(backend.dataDir, 'uploads'));
}

async function waitForState(id: string, state: string) {
  return waitFor(
    async () => {
      const { body } = await getJson(`/status/${id}`);
      return body.state === state ? body : null;
    },
    { timeoutMs: 15_000, what: `job ${id} ${state}` },
  );
}

describe('POST /transcribe: bad uploads', () => {
  it('400 for an empty body', async () => {
    expect(await post(new Uint8Array(0), { 'content-type': 'audio/wav' })).toEqual({
      status: 400,
      body: { error: 'Empty file' },
    });
  });

  it('400 for no body at all', async () => {
    const res = await post(null);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/^No file/);
  });

  it('400 for an empty file in a form', async () => {
    expect(await post(form('file', ''))).toEqual({ status: 400, body: { error: 'Empty file' } });
  });

  it('415 for a body that is not audio', async () => {
    const res = await post('{"hello":1}', { 'content-type': 'application/json' });
    expect(res.status).toBe(415);
    expect(res.body.error).toMatch(/^Unsupported media type "application\/json"/);
  });

  it('415 for a form file that is not audio', async () => {
    const res = await post(form('file', 'hello', 'text/plain'));
    expect(res.status).toBe(415);
    expect(res.body.error).toMatch(/text\/plain/);
  });

  it('413 when the declared length is over MAX_UPLOAD', async () => {
    expect(await post(new Uint8Array(MAX_UPLOAD + 1), { 'content-type': 'audio/wav' })).toEqual({
      status: 413,
      body: { error: 'Payload too large', max_upload: MAX_UPLOAD },
    });
  });

  it('413 while streaming a form over MAX_UPLOAD', async () => {
    expect(await post(form('file', new Uint8Array(MAX_UPLOAD * 4)))).toEqual({
      status: 413,
      body: { error: 'Payload too large', max_upload: MAX_UPLOAD },
    });
  });

  it('413 while streaming a chunked body with no declared length', async () => {
    const chunk = new Uint8Array(16 * 1024);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= MAX_UPLOAD * 4) return controller.close();
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await fetch(`${backend.url}/transcribe`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/octet-stream' },
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: 'Payload too large', max_upload: MAX_UPLOAD });
  });

  it('400 with a reason for a wrong form field', async () => {
    expect(await post(form('audio', '90'))).toEqual({
      status: 400,
      body: { error: 'Unexpected file field "audio": send the audio as "file"' },
    });
  });

  it('400 for a form without a file', async () => {
    const fd = new FormData();
    fd.append('language', 'en');
    const res = await post(fd);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/^No file: the form has no "file" field/);
  });

  it('400 for a malformed multipart body', async () => {
    const res = await post('garbage', { 'content-type': 'multipart/form-data' });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/^Malformed multipart request/);
  });

  it('400 for a bad format or language', async () => {
    expect((await post(form('file', '90', 'audio/wav', { format: 'pdf' }))).status).toBe(400);
    expect((await post(form('file', '90', 'audio/wav', { language: '../x' }))).status).toBe(400);
  });

  it('survives a client that hangs up mid-upload and leaves no file behind', async () => {
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${backend.url}/transcribe`, {
        method: 'POST',
        headers: { 'content-type': 'audio/wav', 'content-length': '10000' },
      });
      req.on('error', () => resolve());
      req.write(Buffer.alloc(1000));
      setImmediate(() => {
        req.destroy();
        resolve();
      });
    });
    await waitFor(async () => (await uploadsLeft()).length === 0, { what: 'the partial upload to go' });
    expect((await getJson('/healthz')).status).toBe(200);
  });

  it('writes nothing for any refused upload', async () => {
    await waitFor(async () => (await uploadsLeft()).length === 0, { what: 'uploads to be empty' });
  });
});

describe('ids in URLs', () => {
  it.each([
    ['GET', '/status/..%2F..%2Fetc%2Fpasswd'],
    ['GET', '/status/../../etc/passwd'],
    ['GET', '/status/AAAAAAAAAAAAAAAAAAAAAA'],
    ['GET', '/result/..%2Fuploads'],
    ['GET', '/result/AAAAAAAAAAAAAAAAAAAAAA'],
    ['DELETE', '/jobs/..%2F..%2F'],
    ['DELETE', '/jobs/AAAAAAAAAAAAAAAAAAAAAA'],
  ])('%s %s → 404', async (method, path) => {
    const res = await fetch(backend.url + path, { method });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'Not found' });
  });

  it('405 for a known path with the wrong method', async () => {
    const res = await fetch(`${backend.url}/transcribe`);
    expect(res.status).toBe(405);
  });
});

describe('a job through the API', () => {
  it('202, status, then the result in every format', async () => {
    const res = await post(form('file', '75', 'audio/wav', { language: 'en' }));
    expect(res.status).toBe(202);
    const id = res.body.job_id as string;
    expect(res.body).toEqual({
      job_id: id,
      status: 'queued',
      status_url: `/status/${id}`,
      result_url: `/result/${id}`,
    });

    const done = await waitForState(id, 'completed');
    expect(done).toEqual({
      job_id: id,
      state: 'completed',
      stage: 'done',
      progress: 1,
      segments_done: 3,
      segments_total: 3,
      resumed: false,
      attempts: 1,
      error: null,
      // For the client's ETA: the audio's length and how fast this attempt transcribed it.
      audio_duration: 75,
      transcribe_speed: expect.any(Number),
    });
    expect(done.transcribe_speed).toBeGreaterThan(0);
    const json = await getJson(`/result/${id}`);
    expect(json.status).toBe(200);
    expect(json.body).toMatchObject({
      job_id: id,
      language: 'en',
      duration: 75,
      segments: expectedFakeSegments(75),
    });
    expect(json.body.text).toBe(
      expectedFakeSegments(75)
        .map((s) => s.text)
        .join(' '),
    );

    const srt = await fetch(`${backend.url}/result/${id}?format=srt`);
    expect(srt.headers.get('content-type')).toMatch(/^application\/x-subrip/);
    expect(await srt.text()).toMatch(
      /^1\n00:00:00,000 --> 00:00:15,000\nwords at 0\n\n2\n00:00:15,000 --> 00:00:30,000\n/,
    );
    const vtt = await fetch(`${backend.url}/result/${id}?format=vtt`);
    expect(await vtt.text()).toMatch(/^WEBVTT\n\n00:00:00.000 --> 00:00:15.000\nwords at 0\n/);
    const txt = await fetch(`${backend.url}/result/${id}?format=txt`);
    expect((await txt.text()).split('\n')[0]).toBe('words at 0');
    expect((await fetch(`${backend.url}/result/${id}?format=doc`)).status).toBe(400);
    // Work files and checkpoints are gone once the result is stored.
    expect(await redis.keys(`${backend.prefix}ckpt:*`)).toEqual([]);
    expect(await uploadsLeft()).toEqual([]);
  });

  it('a raw body takes its options from the query string', async () => {
    const res = await fetch(`${backend.url}/transcribe?format=srt`, {
      method: 'POST',
      body: '20',
      headers: { 'content-type': 'audio/mpeg' },
    });
    expect(res.status).toBe(202);
    const { job_id: id } = (await res.json()) as { job_id: string };
    await waitForState(id, 'completed');
    const result = await fetch(`${backend.url}/result/${id}`);
    expect(await result.text()).toMatch(/^1\n00:00:00,000 --> 00:00:10,000\n/);
  });

  it('undecodable audio fails at validate with invalid_audio and is not retried', async () => {
    const res = await post(form('file', 'this is not audio', 'application/octet-stream'));
    const id = res.body.job_id as string;
    const failed = await waitForState(id, 'failed');
    expect(failed).toMatchObject({ stage: 'validate', attempts: 1, error: { code: 'invalid_audio' } });
    const result = await getJson(`/result/${id}`);
    expect(result.status).toBe(422);
    expect(result.body).toMatchObject({ code: 'invalid_audio' });
    expect(result.body.error).toMatch(/cannot decode/);
  });

  it('409 before completion, and DELETE cancels a running job at once', async () => {
    const entered = backend.transcriber.hold(30);
    const res = await post(form('file', '90'));
    const id = res.body.job_id as string;
    await entered;
    expect(await getJson(`/result/${id}`)).toEqual({
      status: 409,
      body: { error: 'Not ready', state: 'running' },
    });
    const running = await getJson(`/status/${id}`);
    expect(running.body).toMatchObject({
      state: 'running',
      stage: 'transcribe',
      segments_done: 1,
      segments_total: 3,
      audio_duration: 90,
    });
    expect(running.body.transcribe_speed).toBeGreaterThan(0);

    const del = await fetch(`${backend.url}/jobs/${id}`, { method: 'DELETE' });
    expect(del.status).toBe(204);
    expect((await getJson(`/status/${id}`)).status).toBe(404);
    // The held engine call was aborted (not released), and the worker cleaned up after itself.
    await waitFor(() => backend.lines.some((l) => l.job_id === id && l.msg === 'job cancelled'), {
      what: 'the worker to cancel',
    });
    backend.transcriber.release(30);
    expect(await redis.keys(`${backend.prefix}ckpt:{${id}}*`)).toEqual([]);
    expect(await readdir(join(backend.dataDir, 'work'))).not.toContain(id);
    expect(await uploadsLeft()).toEqual([]);
    expect((await fetch(`${backend.url}/jobs/${id}`, { method: 'DELETE' })).status).toBe(404);
  });
});

describe('Idempotency-Key', () => {
  it('returns the same job for a repeated request', async () => {
    const key = `key-${Math.random()}`;
    const first = await post(form('file', '30'), { 'idempotency-key': key });
    const second = await post(form('file', '30'), { 'idempotency-key': key });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.body.job_id).toBe(first.body.job_id);
  });

  it('returns one job for concurrent requests', async () => {
    const key = `key-${Math.random()}`;
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => post(form('file', '30'), { 'idempotency-key': key })),
    );
    expect(new Set(answers.map((a) => a.body.job_id)).size).toBe(1);
    // The winner's upload goes when its job completes; the losers' go at once.
    await waitFor(async () => (await uploadsLeft()).length === 0, { what: 'uploads to be removed' });
  });

  it('a different key makes a different job', async () => {
    const a = await post(form('file', '30'), { 'idempotency-key': `a-${Math.random()}` });
    const b = await post(form('file', '30'), { 'idempotency-key': `b-${Math.random()}` });
    expect(a.body.job_id).not.toBe(b.body.job_id);
  });

  const reused = { status: 422, body: { error: 'Idempotency-Key reused with a different request' } };

  it('refuses the key with a different file, or different options, and keeps the first job', async () => {
    const key = `key-${Math.random()}`;
    const first = await post(form('file', '30'), { 'idempotency-key': key });
    expect(first.status).toBe(202);
    expect(await post(form('file', '60'), { 'idempotency-key': key })).toEqual(reused);
    expect(
      await post(form('file', '30', 'audio/wav', { language: 'de' }), { 'idempotency-key': key }),
    ).toEqual(reused);
    expect(
      await post(form('file', '30', 'audio/wav', { format: 'srt' }), { 'idempotency-key': key }),
    ).toEqual(reused);
    // The same bytes sent raw instead of in a form are the same request.
    const raw = await post('30', { 'idempotency-key': key, 'content-type': 'audio/wav' });
    expect(raw).toMatchObject({ status: 202, body: { job_id: first.body.job_id } });
    const done = await waitForState(first.body.job_id as string, 'completed');
    expect(done.job_id).toBe(first.body.job_id);
    const result = (await getJson(`/result/${first.body.job_id}`)).body;
    expect(result.duration).toBe(30);
    // The refused uploads were removed as they were refused (jobs of earlier tests may still run).
    await waitFor(async () => (await uploadsLeft()).length === 0, { what: 'uploads to be removed' });
  });

  it('answers concurrent requests with one key and two files: one job, one 422', async () => {
    const key = `key-${Math.random()}`;
    const answers = await Promise.all(
      ['30', '60', '30', '60'].map((file) => post(form('file', file), { 'idempotency-key': key })),
    );
    const accepted = answers.filter((a) => a.status === 202);
    expect(new Set(accepted.map((a) => a.body.job_id)).size).toBe(1);
    // Whichever file won, the two requests with the other one were refused.
    expect(answers.filter((a) => a.status === 422)).toEqual([reused, reused]);
    await waitFor(async () => (await uploadsLeft()).length === 0, { what: 'uploads to be removed' });
  });

  it('is scoped to the client: by credential when one is sent, else by X-Forwarded-For', async () => {
    const key = `key-${Math.random()}`;
    const job = async (headers: Record<string, string>, file = '30') => {
      const r = await post(form('file', file), { 'idempotency-key': key, ...headers });
      expect(r.status, JSON.stringify(headers)).toBe(202);
      return r.body.job_id as string;
    };
    const alice = await job({ 'x-forwarded-for': '203.0.113.7' });
    // Another client's key of the same name is its own, whatever file it sends.
    const bob = await job({ 'x-forwarded-for': '198.51.100.9' }, '60');
    expect(bob).not.toBe(alice);
    expect(await job({ 'x-forwarded-for': '203.0.113.7' })).toBe(alice);
    // Hops written in front of bob's address make another scope, not bob's.
    expect(await job({ 'x-forwarded-for': '203.0.113.7, 198.51.100.9' })).not.toBe(bob);
    // A credential names the client wherever it connects from.
    const carol = await job({ authorization: 'Bearer carol', 'x-forwarded-for': '192.0.2.1' });
    expect(await job({ authorization: 'Bearer carol', 'x-forwarded-for': '192.0.2.2' })).toBe(carol);
    expect(await job({ authorization: 'Bearer dave', 'x-forwarded-for': '192.0.2.1' })).not.toBe(carol);
    const erin = await job({ 'x-api-key': 'erin' });
    expect([alice, bob, carol]).not.toContain(erin);
    expect(await job({ 'x-api-key': 'erin', 'x-forwarded-for': '192.0.2.9' })).toBe(erin);
  });
});

describe('health and metrics', () => {
  it('/healthz and /readyz', async () => {
    expect(await getJson('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await getJson('/readyz')).toEqual({
      status: 200,
      body: { status: 'ready', redis: 'ok', engine: 'ok' },
    });
  });

  it('/metrics has the backend names and the engine breaker', async () => {
    const text = await (await fetch(`${backend.url}/metrics`)).text();
    for (const name of [
      'checkpoint_saves_total',
      'checkpoint_recoveries_total',
      'transcription_jobs_total{status="completed"}',
      'transcription_jobs_total{status="cancelled"}',
      'transcription_segment_duration_seconds_bucket',
      'circuit_breaker_state{service="whisper"} 0',
      'circuit_breaker_failures_total{service="whisper"}',
    ]) {
      expect(text).toContain(name);
    }
  });
});

describe('a backend without a whisper model', () => {
  it('starts, says why it is not ready, and keeps jobs queued', async () => {
    const bare = await startTestBackend({ transcriber: undefined, audio: undefined });
    try {
      const ready = await fetch(`${bare.url}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as Record<string, string>;
      expect(body).toMatchObject({ status: 'not_ready', redis: 'ok' });
      expect(body.engine).toMatch(/whisper model not found at .*no-model\.bin: set WHISPER_MODEL/);
      expect(bare.lines.some((l) => l.msg?.toString().startsWith('engine not ready'))).toBe(true);

      const res = await fetch(`${bare.url}/transcribe`, {
        method: 'POST',
        body: '30',
        headers: { 'content-type': 'audio/wav' },
      });
      const { job_id: id } = (await res.json()) as { job_id: string };
      expect((await (await fetch(`${bare.url}/status/${id}`)).json()) as object).toMatchObject({
        state: 'queued',
        stage: 'upload',
        progress: 0.1,
        attempts: 0,
      });
      // A queued job is removed from the queue on DELETE.
      expect((await fetch(`${bare.url}/jobs/${id}`, { method: 'DELETE' })).status).toBe(204);
      expect(await redis.exists(`${bare.prefix}bull:transcribe:${id}`)).toBe(0);
      expect(await readdir(join(bare.dataDir, 'uploads'))).toEqual([]);
    } finally {
      await bare.dispose();
      await deletePrefix(redis, bare.prefix);
    }
  });
});
