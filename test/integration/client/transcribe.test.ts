// `floodgate transcribe` against a stub API server (stub-api.ts, the backend API's shapes on a real
// loopback socket): the upload is a streamed multipart form, progress is read poll by poll, 429 and
// 503 are waited out for their Retry-After and retried (and said so), the transcript lands in a file
// in each format, Ctrl-C on the real command leaves the job running (no DELETE) and prints how to
// resume, and --job resumes it. Retry-After is 1 s where a retry is tested; nothing asserts timing.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runTranscribe } from '../../../backend/client/cli.js';
import { ApiClient, isClientError, type JobStatus, type RetryNotice } from '../../../backend/client/http.js';
import { transcribe } from '../../../backend/client/transcribe.js';
import { PROJECT_ROOT, runCli } from '../../helpers/proxy.js';
import { freePort } from '../../helpers/redis-server.js';
import { waitFor } from '../../helpers/wait.js';
import { expectedResult, STEPS, type StubApi, startStubApi } from './stub-api.js';

const AUDIO_BYTES = 48_044;

let dir: string;
let audio: string;
let stub: StubApi;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'floodgate-client-'));
  audio = join(dir, 'speech.wav');
  await writeFile(audio, Buffer.alloc(AUDIO_BYTES, 7));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  stub = await startStubApi();
});
afterEach(async () => {
  vi.restoreAllMocks();
  await stub.close();
});

/** Runs the CLI's runner in-process; its stderr lines are captured instead of printed. */
async function runInProcess(audioPath: string | undefined, o: Parameters<typeof runTranscribe>[1]) {
  const lines: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  const code = await runTranscribe(audioPath, o);
  vi.mocked(process.stderr.write).mockRestore();
  return { code, stderr: lines.join('') };
}

describe('floodgate transcribe against a stub API server', () => {
  it('streams the upload as multipart "file", follows every stage, then fetches the result', async () => {
    const seen: JobStatus[] = [];
    const t = await transcribe({
      url: stub.url,
      audio,
      format: 'txt',
      pollIntervalMs: 5,
      onStatus: (s) => seen.push(s),
    });
    expect(stub.uploads).toEqual([
      expect.objectContaining({
        fileName: 'speech.wav',
        mimeType: 'audio/wav',
        bytes: AUDIO_BYTES,
        fields: { format: 'txt' },
      }),
    ]);
    expect(stub.uploads[0]!.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
    // One status per poll, in the pipeline's order, each consumed.
    expect(seen.map((s) => [s.stage, s.progress])).toEqual(STEPS.map((s) => [s.stage, s.progress]));
    expect(t.body.toString()).toBe(expectedResult(t.jobId, 'txt'));
    expect(stub.requests.at(-1)).toBe(`GET /result/${t.jobId}`);
  });

  it('waits out a 429 on the upload for its Retry-After, says so, and retries with the same key', async () => {
    stub.queue('POST /transcribe', {
      status: 429,
      retryAfter: '1',
      body: { error: 'Rate limit exceeded', limit: 10, window: 'burst', retry_after: 1 },
    });
    const notices: RetryNotice[] = [];
    const t = await transcribe({
      url: stub.url,
      audio,
      format: 'json',
      pollIntervalMs: 5,
      onRetry: (n) => notices.push(n),
    });
    expect(notices).toEqual([
      { request: 'POST /transcribe', status: 429, reason: 'Rate limit exceeded', waitMs: 1000, attempt: 2 },
    ]);
    expect(stub.requests.filter((r) => r === 'POST /transcribe')).toHaveLength(2);
    expect(stub.uploadKeys).toHaveLength(2);
    expect(stub.uploadKeys[0]).toBe(stub.uploadKeys[1]);
    expect(JSON.parse(t.body.toString())).toMatchObject({ job_id: t.jobId, text: 'Hello from the stub.' });
  });

  it('waits out a 503 (an open circuit) while polling, says so, and carries on', async () => {
    stub.queue('GET /status', {
      status: 503,
      retryAfter: '1',
      body: {
        error: 'Service temporarily unavailable',
        upstream: 'transcriber',
        state: 'OPEN',
        retry_after: 1,
      },
    });
    const { code, stderr } = await runInProcess(audio, {
      url: stub.url,
      format: 'txt',
      output: join(dir, 'after-503.txt'),
      pollIntervalMs: 5,
    });
    expect(code).toBe(0);
    expect(stderr).toMatch(
      /service unavailable \(503: Service temporarily unavailable\) on GET \/status\/job\d+; waiting 1 s before retrying/,
    );
    expect(stub.requests.filter((r) => r.startsWith('GET /status/')).length).toBe(STEPS.length + 1);
    expect(await readFile(join(dir, 'after-503.txt'), 'utf8')).toBe(expectedResult('job0001', 'txt'));
  });

  it.each(['json', 'txt', 'srt', 'vtt'])('writes the %s result to -o OUT', async (format) => {
    const out = join(dir, `out.${format}`);
    const { code, stderr } = await runInProcess(audio, {
      url: stub.url,
      format,
      output: out,
      pollIntervalMs: 5,
    });
    expect(code).toBe(0);
    expect(stderr).toContain(`wrote ${out} (${format}, job job0001)`);
    // Progress was reported stage by stage (stderr is not a terminal here, so as lines).
    expect(stderr).toContain('transcribe 60% (running, 2/4 segments)');
    // Every format ends its last line: json too, which the API sends without one.
    const written = await readFile(out, 'utf8');
    expect(written).toBe(expectedResult('job0001', format).replace(/\n?$/, '\n'));
    expect(written.endsWith('\n') && !written.endsWith('\n\n')).toBe(true);
    expect(stub.requests).toContain(`GET /result/job0001`);
  });

  it("prints the server's notice about a waiting job once, then carries on when it clears", async () => {
    const notice = {
      code: 'engine_not_ready',
      message: 'no whisper model: set WHISPER_MODEL or run `npx floodgate model download base.en`',
    };
    const waiting = {
      status: 200,
      body: { job_id: 'job0001', ...STEPS[0], resumed: false, attempts: 0, error: null, notice },
    };
    stub.queue('GET /status', waiting, waiting, waiting);
    const out = join(dir, 'after-notice.txt');
    const { code, stderr } = await runInProcess(audio, {
      url: stub.url,
      format: 'txt',
      output: out,
      pollIntervalMs: 5,
    });
    expect(code).toBe(0);
    expect(stub.requests.filter((r) => r.startsWith('GET /status/'))).toHaveLength(STEPS.length + 3);
    expect(stderr.split(notice.message)).toHaveLength(2);
    expect(stderr).toContain(
      `the server cannot start job job0001 yet: ${notice.message}. It waits in the queue and starts once that is fixed (Ctrl-C leaves it queued)`,
    );
    expect(stderr).toContain('upload 10% (queued: engine not ready)');
    expect(stderr.split('the server can run the job now')).toHaveLength(2);
    expect(await readFile(out, 'utf8')).toBe(expectedResult('job0001', 'txt'));
  });

  it('reports a failed job and exits 1', async () => {
    stub.queue('GET /status', {
      status: 200,
      body: {
        job_id: 'job0001',
        state: 'failed',
        stage: 'validate',
        progress: 0.35,
        segments_done: 0,
        segments_total: 0,
        resumed: false,
        attempts: 1,
        error: { code: 'invalid_audio', message: 'The file is not decodable audio' },
      },
    });
    const { code, stderr } = await runInProcess(audio, { url: stub.url, format: 'txt', pollIntervalMs: 5 });
    expect(code).toBe(1);
    expect(stderr).toContain(
      'job job0001 failed at validate: The file is not decodable audio (invalid_audio)',
    );
    expect(stderr).not.toContain('--job');
  });

  it('says which file it cannot read', async () => {
    const { code, stderr } = await runInProcess(join(dir, 'missing.wav'), { url: stub.url });
    expect(code).toBe(1);
    expect(stderr).toContain(`cannot read ${join(dir, 'missing.wav')}`);
    expect(stub.requests).toEqual([]);
  });

  it.each(['vtt', 'json'])(
    'the command writes the %s transcript to stdout, ending in a newline',
    async (format) => {
      // Straight to the last step: the command polls once a second, and one poll is enough here.
      stub.startAt(STEPS.length - 1);
      const r = await runCli(['transcribe', audio, '--url', stub.url, '--format', format]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(expectedResult('job0001', format).replace(/\n?$/, '\n'));
      expect(r.stderr).toContain('uploaded');
      expect(r.stderr).toContain('done 100%');
    },
  );

  it('Ctrl-C leaves the job running and prints its id; --job resumes it', async () => {
    stub.holdAt(3);
    const child: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', 'cli/floodgate.ts', 'transcribe', audio, '--url', stub.url, '--format', 'srt'],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      // Running: uploaded, and polled at least once.
      await waitFor(() => stub.requests.some((r) => r.startsWith('GET /status/')), {
        timeoutMs: 20_000,
        what: 'the client to poll',
      });
      child.kill('SIGINT');
      expect(await exited).toBe(130);
    } finally {
      child.kill('SIGKILL');
    }
    expect(stderr).toContain('interrupted; job job0001 keeps running on the server.');
    expect(stderr).toContain(
      `resume with: floodgate transcribe --job job0001 --url ${stub.url} --format srt`,
    );
    expect(stub.deletes).toEqual([]);
    expect(stub.requests.some((r) => r.startsWith('DELETE'))).toBe(false);
    expect(stub.jobs.has('job0001')).toBe(true);

    // The job finishes meanwhile; --job picks it up without uploading again.
    stub.holdAt(null, 'job0001');
    const out = join(dir, 'resumed.srt');
    const resumed = await runInProcess(undefined, {
      url: stub.url,
      format: 'srt',
      job: 'job0001',
      output: out,
      pollIntervalMs: 5,
    });
    expect(resumed.code).toBe(0);
    expect(await readFile(out, 'utf8')).toBe(expectedResult('job0001', 'srt'));
    expect(stub.uploads).toHaveLength(1);
    expect(stub.requests.filter((r) => r === 'POST /transcribe')).toHaveLength(1);
  });

  it('fails in one line, within seconds, when nothing listens at the URL', async () => {
    // A port that was bound a moment ago and closed again: connecting to it is refused.
    const url = `http://127.0.0.1:${await freePort()}`;
    const started = Date.now();
    const r = await runCli(['transcribe', audio, '--url', url]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `floodgate transcribe: cannot connect to ${url}: connection refused (POST /transcribe, tried 5 times); ` +
        'is the proxy running? Start it with `npm start`, or pass --url\n',
    );
    // A bound, not a measurement: it used to retry for 8 minutes.
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it('a refusal before any answer is not reported as a retry, and is the refused code', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const notices: RetryNotice[] = [];
    const api = new ApiClient({ baseUrl: url, onRetry: (n) => notices.push(n) });
    const err = await api.status('job0001').catch((e: unknown) => e);
    expect(isClientError(err) && err.code).toBe('refused');
    expect(notices).toEqual([]);
  });

  it('waits out a server that answered, went away and came back (a restart mid-job)', async () => {
    stub.holdAt(3);
    const notices: RetryNotice[] = [];
    let stopped: Promise<void> | null = null;
    let restarted: Promise<void> | null = null;
    const t = await transcribe({
      url: stub.url,
      audio,
      format: 'txt',
      pollIntervalMs: 5,
      onStatus: (s) => {
        // The job is running: the server goes away.
        if (s.stage === 'transcribe' && stopped === null) stopped = stub.stop();
      },
      onRetry: (n) => {
        notices.push(n);
        // The client waits: the server comes back, and the job finishes.
        if (n.status === null && restarted === null) {
          restarted = stopped!.then(async () => {
            stub.holdAt(null, 'job0001');
            await stub.restart();
          });
        }
      },
    });
    expect(t.body.toString()).toBe(expectedResult('job0001', 'txt'));
    expect(notices.length).toBeGreaterThanOrEqual(1);
    expect(notices[0]).toMatchObject({ request: 'GET /status/job0001', status: null, attempt: 2 });
    expect(notices.every((n) => n.status === null)).toBe(true);
    expect(stub.uploads).toHaveLength(1);
  });
});
