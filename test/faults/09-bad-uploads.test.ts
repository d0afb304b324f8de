// Fault 9: bad uploads against a backend process (real ffmpeg and whisper.cpp), each answered with its
// documented status (backend/errors.ts): 400 for no file, an empty one or a wrong multipart field, 413 over
// MAX_UPLOAD, 415 for what is not audio; audio that turns out undecodable, or longer than MAX_DURATION,
// fails its job at validate with invalid_audio (/status failed, /result 422). Job ids with `../` are 404.
// Nothing is written outside DATA_DIR: the sandbox around it (holding the backend's TMPDIR too) is
// listed before and after, and file names planted in the requests are looked for everywhere nearby.
// An over-long upload must not cost more than MAX_DURATION of decoded audio on disk. A playlist naming
// server-local files fails alike whether they exist or not, and no answer names them.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../core/paths.js';
import { runProcess } from '../../core/process.js';
import { randomBytesFile, tonePattern, truncatedCopy } from '../helpers/audio.js';
import { type BackendProcess, spawnBackend } from '../helpers/backend-process.js';
import { tinyGgmlModelPath } from '../helpers/ggml-model.js';
import { uniquePrefix } from '../helpers/redis.js';
import { type PrivateRedis, startPrivateRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait.js';
import { type JobStatus, status, waitForState } from './lib/jobs.js';
import { rawRequest } from './lib/raw-http.js';
import { recordFault } from './lib/report.js';

const MAX_DURATION_SEC = 20 * 60;
const MAX_UPLOAD = 20 * 1024 * 1024;
/** 16 kHz mono s16: what one second of normalized audio takes on disk. */
const WAV_BYTES_PER_SEC = 32_000;
const MARK = `fgescape${process.pid}`;

/** Every file under `root` (relative paths), skipping `skip`. */
async function listFiles(root: string, skip: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (p === skip) continue;
      if (e.isDirectory()) await walk(p);
      else out.push(relative(root, p));
    }
  };
  await walk(root);
  return out.sort();
}

async function bytesUnder(root: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else total += (await stat(p).catch(() => ({ size: 0 }))).size;
    }
  };
  await walk(root);
  return total;
}

describe('fault 9: bad uploads', () => {
  const prefix = uniquePrefix('faults-uploads');
  let redis: PrivateRedis;
  let sandbox: string;
  let dataDir: string;
  let files: string;
  let backend: BackendProcess;
  let before: string[];
  const rows: string[] = [];

  beforeAll(async () => {
    if (!existsSync(join(projectRoot(), '.cache', 'whisper', 'bin', 'main')))
      throw new Error('whisper.cpp is not built; run npm run build:whisper');
    sandbox = await mkdtemp(join(tmpdir(), 'floodgate-faults-uploads-'));
    dataDir = join(sandbox, 'data');
    files = await mkdtemp(join(tmpdir(), 'floodgate-faults-upload-files-'));
    await mkdir(join(sandbox, 'tmp'));
    redis = await startPrivateRedis();
    backend = await spawnBackend({
      redisUrl: redis.url,
      prefix,
      dataDir,
      model: await tinyGgmlModelPath(),
      env: {
        MAX_DURATION: `${MAX_DURATION_SEC}s`,
        MAX_UPLOAD: String(MAX_UPLOAD),
        JOB_LEASE: '2s',
        // Anything the backend or its ffmpeg/whisper children put in a temp dir lands in the sandbox.
        TMPDIR: join(sandbox, 'tmp'),
      },
    });
    before = await listFiles(sandbox, dataDir);
  });

  afterAll(async () => {
    await backend?.kill();
    await redis?.stop();
    for (const d of [sandbox, files]) if (d) await rm(d, { recursive: true, force: true });
    if (rows.length > 0) {
      await recordFault({
        fault: '9 Bad uploads: empty, random bytes, truncated MP3s, 3-hour silence, wrong field, ../ ids',
        observed: rows.join('; '),
        lost: 'nothing: every answer as documented, no file outside DATA_DIR, nothing left inside it',
      });
    }
  });

  const url = () => backend.url;

  async function post(body: FormData | Blob | null, headers: Record<string, string> = {}) {
    const res = await fetch(`${url()}/transcribe`, { method: 'POST', body, headers });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  function form(field: string, data: Buffer | string, type: string, filename = 'audio.bin'): FormData {
    const f = new FormData();
    f.append(field, new Blob([data], { type }), filename);
    return f;
  }

  async function failedJob(id: string): Promise<JobStatus> {
    const s = await waitForState(url, id, ['failed'], 120_000);
    const r = await fetch(`${url()}/result/${id}`);
    expect(r.status).toBe(422);
    expect(((await r.json()) as { code?: string }).code).toBe('invalid_audio');
    return s;
  }

  it('refuses what is not an upload at all: 400, 413, 415', async () => {
    const answers: Record<string, number> = {};
    const check = async (name: string, r: { status: number }, expected: number) => {
      answers[name] = r.status;
      expect(r.status, name).toBe(expected);
    };
    await check('zero bytes raw', await post(new Blob([], { type: 'audio/wav' })), 400);
    await check('zero bytes in a form', await post(form('file', Buffer.alloc(0), 'audio/wav')), 400);
    await check('no body', await post(null), 400);
    await check('wrong multipart field', await post(form('audio', Buffer.alloc(2048, 1), 'audio/wav')), 400);
    const textField = new FormData();
    textField.append('file', 'not a file');
    await check('file as a text field', await post(textField), 400);
    await check('text/plain body', await post(new Blob(['hello'], { type: 'text/plain' })), 415);
    await check('text/plain file', await post(form('file', 'hello', 'text/plain')), 415);
    const huge = await rawRequest(
      Number(new URL(url()).port),
      `POST /transcribe HTTP/1.1\r\nHost: a\r\nContent-Type: audio/wav\r\nContent-Length: ${MAX_UPLOAD + 1}\r\n\r\n`,
      1_000,
    );
    await check('over MAX_UPLOAD (declared)', huge, 413);
    // Refused while the client is still sending: it must get the answer, not a reset connection.
    const burst = await Promise.all(
      Array.from({ length: 150 }, (_, i) =>
        post(
          i % 3 === 0
            ? form('audio', Buffer.alloc(4096, 1), 'audio/wav')
            : form('file', Buffer.alloc(4096, 1), i % 3 === 1 ? 'text/plain' : 'image/png'),
        ).then(
          (r) => r.status,
          (err: unknown) => `${String(err)} (${String((err as { cause?: { code?: string } }).cause?.code)})`,
        ),
      ),
    );
    expect(burst.filter((s, i) => s !== (i % 3 === 0 ? 400 : 415))).toEqual([]);
    answers['150 concurrent early refusals, answered'] = burst.length;
    rows.push(
      `refused: ${Object.entries(answers)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
  });

  it('fails undecodable audio at validate with invalid_audio (status failed, result 422)', async () => {
    const mp3 = await tonePattern(join(files, 'tones.mp3'), { totalSec: 40 });
    const size = (await stat(mp3)).size;
    const cases: [string, string, string][] = [
      ['random bytes as audio/wav', await randomBytesFile(join(files, 'noise.wav'), 64 * 1024), 'audio/wav'],
      ['MP3 cut inside its first frame', await truncatedCopy(mp3, join(files, 'cut.mp3'), 200), 'audio/mpeg'],
    ];
    for (const [name, file, type] of cases) {
      const r = await post(form('file', await readFile(file), type, `${MARK}.bin`));
      expect(r.status, name).toBe(202);
      const s = await failedJob(r.body.job_id as string);
      expect(s, name).toMatchObject({
        state: 'failed',
        stage: 'validate',
        attempts: 1,
        error: { code: 'invalid_audio' },
      });
    }
    // Cut in the middle, an MP3 still holds audio: the job transcribes what is there (a job fails
    // only on undecodable or empty audio).
    const half = await truncatedCopy(mp3, join(files, 'half.mp3'), size >> 1);
    const r = await post(form('file', await readFile(half), 'audio/mpeg'));
    expect(r.status).toBe(202);
    const done = await waitForState(url, r.body.job_id as string, ['completed'], 120_000);
    const transcript = (await (await fetch(`${url()}/result/${done.job_id}`)).json()) as { duration: number };
    expect(transcript.duration).toBeGreaterThan(5);
    expect(transcript.duration).toBeLessThan(35);
    rows.push(
      `random bytes and an MP3 cut in its first frame → 202, then failed at validate with invalid_audio, /result 422; an MP3 cut in half → completed with its ${transcript.duration} s`,
    );
  });

  it('fails a 3-hour file over MAX_DURATION without decoding more than the limit', async () => {
    const silent = join(files, 'silent-3h.mp3');
    await runProcess(
      'ffmpeg',
      [
        '-hide_banner',
        '-loglevel',
        'error',
        '-y',
        '-f',
        'lavfi',
        '-i',
        'anullsrc=r=8000:cl=mono',
        '-t',
        '10800',
        '-c:a',
        'libmp3lame',
        '-b:a',
        '8k',
        silent,
      ],
      { timeoutMs: 120_000 },
    );
    const upload = (await stat(silent)).size;
    expect(upload).toBeLessThan(MAX_UPLOAD);
    const r = await post(form('file', await readFile(silent), 'audio/mpeg'));
    expect(r.status).toBe(202);
    const id = r.body.job_id as string;
    // Watch DATA_DIR while the job runs: decoding is bounded by the limit, not by the upload.
    let peak = 0;
    const final = await waitFor(
      async () => {
        peak = Math.max(peak, await bytesUnder(dataDir));
        const s = await status(url(), id);
        return s.state === 'failed' || s.state === 'completed' ? s : null;
      },
      { timeoutMs: 120_000, intervalMs: 50, what: 'the 3-hour job to end' },
    );
    expect(final).toMatchObject({ state: 'failed', stage: 'validate', error: { code: 'invalid_audio' } });
    await failedJob(id);
    // The upload, the WAV of the limit plus its one second, and room for small files.
    const bound = upload + (MAX_DURATION_SEC + 1) * WAV_BYTES_PER_SEC + 4 * 1024 * 1024;
    expect(peak).toBeLessThan(bound);
    rows.push(
      `3 h of silence (${(upload / 1e6).toFixed(1)} MB MP3, MAX_DURATION ${MAX_DURATION_SEC / 60} min) → failed invalid_audio ` +
        `"${final.error?.message}", peak DATA_DIR ${(peak / 1e6).toFixed(0)} MB (bound ${(bound / 1e6).toFixed(0)} MB)`,
    );
  });

  it('refuses a playlist naming server-local files, and says nothing of them', async () => {
    // MPEG-TS is a segment type HLS accepts: unrestricted, ffmpeg decodes the playlist to its 7 s.
    const local = await tonePattern(join(files, 'local-secret.ts'), { totalSec: 7 });
    const missing = join(files, 'no-such-file.ts');
    const seen: { message: string; ms: number; bytes: number }[] = [];
    for (const target of [local, missing]) {
      const playlist = `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:7,\nfile://${target}\n#EXT-X-ENDLIST\n`;
      const started = performance.now();
      const r = await post(form('file', playlist, 'audio/mpeg', 'local.m3u8'));
      expect(r.status).toBe(202);
      const id = r.body.job_id as string;
      const final = await waitFor(
        async () => {
          const s = await status(url(), id);
          return s.state === 'failed' || s.state === 'completed' ? s : null;
        },
        { timeoutMs: 120_000, intervalMs: 50, what: `playlist job ${id} to end` },
      );
      const ms = performance.now() - started;
      expect(final, target).toMatchObject({ state: 'failed', attempts: 1, error: { code: 'invalid_audio' } });
      const res = await fetch(`${url()}/result/${id}`);
      const body = await res.text();
      expect(res.status).toBe(422);
      expect(JSON.parse(body)).toMatchObject({ code: 'invalid_audio' });
      // Neither the target, nor where it lies, nor where uploads are kept; and both answers alike.
      for (const text of [JSON.stringify(final.error), body]) {
        for (const path of [target, files, dataDir, 'no such file', 'No such file']) {
          expect(text, target).not.toContain(path);
        }
      }
      // The reason is in the log, for whoever runs the server.
      const logged = backend.lines.find((l) => l.job_id === id && String(l.msg).startsWith('input refused'));
      expect(JSON.stringify(logged)).toContain('not on whitelist');
      seen.push({ message: final.error?.message ?? '', ms: Math.round(ms), bytes: playlist.length });
    }
    const [existing, absent] = seen as [(typeof seen)[0], (typeof seen)[0]];
    expect(absent.message).toBe(existing.message);
    await recordFault({
      fault:
        '9 Bad uploads: a 90-byte HLS playlist naming a server-local file (existing, and missing) as audio/mpeg',
      observed:
        `both → 202, then failed invalid_audio after 1 attempt (${existing.ms} ms and ${absent.ms} ms), ` +
        `/result 422; the same message for both: "${existing.message}"; ffmpeg's reason only in the log`,
      lost: 'nothing: the local file is never decoded, and no answer holds a path or tells whether it exists',
    });
  });

  it('answers 404 for job ids with ../, and a planted file name goes nowhere', async () => {
    const port = Number(new URL(url()).port);
    const targets = [
      'GET /status/../../../../tmp/x',
      `GET /status/..%2F..%2F..%2F${MARK}`,
      'GET /status/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
      'GET /result/..%2Fuploads',
      `GET /result/..%2F..%2Fdata%2Fuploads%2F${MARK}`,
      'DELETE /jobs/..%2F..%2F',
      `DELETE /jobs/..%2F${MARK}`,
      'GET /status/....................../',
      'GET /status/..\\..\\..\\etc\\passwd',
    ];
    const answers: number[] = [];
    for (const t of targets) {
      const r = await rawRequest(port, `${t} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
      answers.push(r.status);
    }
    expect(answers).toEqual(targets.map(() => 404));
    // A file name with ../ in a form is ignored: the upload is stored under its job id.
    const wav = await tonePattern(join(files, 'short.wav'), { totalSec: 3 });
    const r = await post(form('file', await readFile(wav), 'audio/wav', `../../../${MARK}.wav`));
    expect(r.status).toBe(202);
    await waitForState(url, r.body.job_id as string, ['completed'], 120_000);
    rows.push(
      `${targets.length} job ids with ../ (raw, %2F, %2e, backslash) → all 404; a "../" file name → stored under its job id`,
    );
  });

  it('wrote nothing outside DATA_DIR and left nothing inside it', async () => {
    expect(await listFiles(sandbox, dataDir)).toEqual(before);
    expect(await readdir(join(dataDir, 'uploads'))).toEqual([]);
    expect(await readdir(join(dataDir, 'work'))).toEqual([]);
    for (const d of [sandbox, join(sandbox, '..'), tmpdir(), projectRoot()]) {
      expect((await readdir(d)).filter((n) => n.includes(MARK))).toEqual([]);
    }
  });
});
