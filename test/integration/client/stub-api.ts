// A small fake of the backend API (backend/api/server.ts), for the client's tests: POST /transcribe (multipart,
// field `file`, parsed with busboy as the real one does), GET /status/ID walking a job through the
// pipeline's stages one poll at a time, GET /result/ID?format= in the four formats, DELETE /jobs/ID.
// A test can queue answers (a 429 or 503 with Retry-After) ahead of the real ones, hold a job in a
// stage, and read back every request it saw.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import busboy from 'busboy';

export interface StubUpload {
  fields: Record<string, string>;
  fileName: string | null;
  mimeType: string | null;
  bytes: number;
  idempotencyKey: string | null;
}

export interface StubJob {
  id: string;
  /** Index into STEPS of the next /status answer. */
  step: number;
  /** Stop advancing at this step (the job keeps running). */
  holdAt: number | null;
  format: string | null;
}

export interface QueuedAnswer {
  status: number;
  retryAfter?: string;
  body?: Record<string, unknown>;
}

/** The pipeline's stages and progress (backend/jobs/progress.ts), one per poll. */
export const STEPS = [
  { state: 'queued', stage: 'upload', progress: 0.1, segments_done: 0, segments_total: 0 },
  { state: 'running', stage: 'normalize', progress: 0.25, segments_done: 0, segments_total: 0 },
  { state: 'running', stage: 'validate', progress: 0.35, segments_done: 0, segments_total: 0 },
  { state: 'running', stage: 'transcribe', progress: 0.6, segments_done: 2, segments_total: 4 },
  { state: 'running', stage: 'transcribe', progress: 0.85, segments_done: 4, segments_total: 4 },
  { state: 'completed', stage: 'done', progress: 1, segments_done: 4, segments_total: 4 },
] as const;

export const TRANSCRIPT = {
  language: 'en',
  duration: 2.5,
  text: 'Hello from the stub.',
  segments: [{ start: 0, end: 2.5, text: 'Hello from the stub.' }],
};

export function expectedResult(jobId: string, format: string): string {
  switch (format) {
    case 'txt':
      return 'Hello from the stub.\n';
    case 'srt':
      return '1\n00:00:00,000 --> 00:00:02,500\nHello from the stub.\n';
    case 'vtt':
      return 'WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello from the stub.\n';
    default:
      return JSON.stringify({ job_id: jobId, ...TRANSCRIPT });
  }
}

const CONTENT_TYPE: Record<string, string> = {
  json: 'application/json',
  txt: 'text/plain; charset=utf-8',
  srt: 'application/x-subrip; charset=utf-8',
  vtt: 'text/vtt; charset=utf-8',
};

export interface StubApi {
  readonly url: string;
  readonly jobs: Map<string, StubJob>;
  readonly uploads: StubUpload[];
  /** "METHOD /path" of every request, in order. */
  readonly requests: string[];
  readonly deletes: string[];
  /** The Idempotency-Key of every POST /transcribe, answered or not. */
  readonly uploadKeys: (string | null)[];
  /** Answers `METHOD /first-segment` (e.g. "GET /status") with these before the real answers. */
  queue(route: string, ...answers: QueuedAnswer[]): void;
  /** Keeps new jobs (or one job) running at `step`. */
  holdAt(step: number | null, jobId?: string): void;
  /** New jobs start at this step (default 0). */
  startAt(step: number): void;
  /** Stops listening and drops every connection, as a restarting server does; jobs are kept. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

export async function startStubApi(): Promise<StubApi> {
  const jobs = new Map<string, StubJob>();
  const uploads: StubUpload[] = [];
  const requests: string[] = [];
  const deletes: string[] = [];
  const uploadKeys: (string | null)[] = [];
  const queued = new Map<string, QueuedAnswer[]>();
  let defaultHold: number | null = null;
  let firstStep = 0;
  let nextId = 1;

  function receive(req: IncomingMessage, res: ServerResponse): void {
    const upload: StubUpload = {
      fields: {},
      fileName: null,
      mimeType: null,
      bytes: 0,
      idempotencyKey: (req.headers['idempotency-key'] as string | undefined) ?? null,
    };
    const parser = busboy({ headers: req.headers });
    parser.on('field', (name, value) => {
      upload.fields[name] = value;
    });
    parser.on('file', (name, stream, info) => {
      if (name !== 'file') {
        stream.resume();
        return;
      }
      upload.fileName = info.filename ?? null;
      upload.mimeType = info.mimeType;
      stream.on('data', (d: Buffer) => {
        upload.bytes += d.length;
      });
    });
    parser.on('close', () => {
      uploads.push(upload);
      if (upload.bytes === 0) return send(res, 400, { error: 'No file' });
      const id = `job${String(nextId++).padStart(4, '0')}`;
      jobs.set(id, { id, step: firstStep, holdAt: defaultHold, format: upload.fields.format ?? null });
      send(res, 202, {
        job_id: id,
        status: 'queued',
        status_url: `/status/${id}`,
        result_url: `/result/${id}`,
      });
    });
    parser.on('error', () => send(res, 400, { error: 'Bad multipart body' }));
    req.pipe(parser);
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://stub');
    const method = req.method ?? 'GET';
    requests.push(`${method} ${url.pathname}`);
    if (method === 'POST') uploadKeys.push((req.headers['idempotency-key'] as string | undefined) ?? null);
    const [, first = '', id = ''] = url.pathname.split('/');
    const next = queued.get(`${method} /${first}`)?.shift();
    if (next) {
      req.resume();
      const headers: Record<string, string> = next.retryAfter ? { 'retry-after': next.retryAfter } : {};
      return send(res, next.status, next.body ?? { error: `stubbed ${next.status}` }, headers);
    }
    if (method === 'POST' && url.pathname === '/transcribe') return receive(req, res);
    const job = jobs.get(id);
    if (method === 'GET' && first === 'status') {
      if (!job) return send(res, 404, { error: 'Not found' });
      const at = job.holdAt === null ? job.step : Math.min(job.step, job.holdAt);
      const s = STEPS[Math.min(at, STEPS.length - 1)]!;
      job.step = Math.min(at + 1, STEPS.length - 1);
      return send(res, 200, { job_id: id, ...s, resumed: false, attempts: 1, error: null });
    }
    if (method === 'GET' && first === 'result') {
      if (!job) return send(res, 404, { error: 'Not found' });
      const state = STEPS[job.step]!.state;
      if (state !== 'completed' || job.step < STEPS.length - 1) {
        return send(res, 409, { error: 'Not ready', state });
      }
      const format = url.searchParams.get('format') ?? job.format ?? 'json';
      res.writeHead(200, { 'content-type': CONTENT_TYPE[format] ?? 'text/plain' });
      return res.end(expectedResult(id, format));
    }
    if (method === 'DELETE' && first === 'jobs') {
      deletes.push(id);
      jobs.delete(id);
      res.writeHead(204);
      return res.end();
    }
    send(res, 404, { error: 'Not found' });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    jobs,
    uploads,
    requests,
    deletes,
    uploadKeys,
    queue(route, ...answers) {
      queued.set(route, [...(queued.get(route) ?? []), ...answers]);
    },
    holdAt(step, jobId) {
      if (jobId === undefined) defaultHold = step;
      else jobs.get(jobId)!.holdAt = step;
    },
    startAt(step) {
      firstStep = step;
    },
    async stop() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
    },
    async restart() {
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
    },
    async close() {
      if (!server.listening) return;
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
