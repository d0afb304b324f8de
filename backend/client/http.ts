// The client's HTTP layer over the backend API (backend/api/server.ts), usually reached through the proxy.
// Every call goes through one retry rule: a 429 or a 503 is waited out for as long as its
// Retry-After says, a dropped connection is retried with a short backoff, and each wait is reported
// (the CLI prints it) before it starts. Nothing else is retried: a 4xx is the caller's answer.
import { setTimeout as delay } from 'node:timers/promises';
import { type Dispatcher, FormData, request } from 'undici';
import { FloodgateError, hasBrand } from '../../core/errors.js';
import type { JobState, JobStatus } from '../jobs/job-store.js';

/** GET /status/ID's body: the backend's own types, so the client cannot drift from them. */
export type { JobState, JobStatus };

export type ResultFormat = 'json' | 'txt' | 'srt' | 'vtt';
export const RESULT_FORMATS: readonly ResultFormat[] = ['json', 'txt', 'srt', 'vtt'];

/** POST /transcribe's 202. */
export interface SubmittedJob {
  job_id: string;
  status: string;
  status_url: string;
  result_url: string;
}

export type ClientErrorCode =
  /** The API refused the request (400, 413, 415, ...). */
  | 'rejected'
  | 'not_found'
  | 'job_failed'
  /** Retried as often as allowed, or asked to wait longer than we will. */
  | 'gave_up'
  | 'unreachable'
  /** Nothing listens at the URL, and nothing has answered there since the client started. */
  | 'refused'
  | 'aborted';

export class ClientError extends FloodgateError<ClientErrorCode> {
  constructor(
    code: ClientErrorCode,
    message: string,
    readonly status: number | null = null,
  ) {
    super('ClientError', code, message);
  }
}

export function isClientError(err: unknown): err is ClientError {
  return hasBrand(err, 'ClientError');
}

/** A wait the client is about to do, and why. */
export interface RetryNotice {
  /** "POST /transcribe", "GET /status/ID". */
  readonly request: string;
  /** 429 or 503; null for a connection that failed. */
  readonly status: number | null;
  /** The answer's `error` field, or the connection error's message. */
  readonly reason: string;
  readonly waitMs: number;
  /** The attempt about to be made (2 for the first retry). */
  readonly attempt: number;
}

export interface ApiClientOptions {
  /** Where the API is: the proxy (default http://127.0.0.1:8080) or the backend itself. */
  readonly baseUrl: string;
  readonly onRetry?: (notice: RetryNotice) => void;
  /** Retries per request (default 20). */
  readonly maxRetries?: number;
  /** A Retry-After longer than this is not waited out (default 1 h); the error says when to come back. */
  readonly maxWaitMs?: number;
  readonly signal?: AbortSignal;
  readonly dispatcher?: Dispatcher;
}

const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
]);
/** Without a Retry-After, and after a dropped connection: 1 s, 2 s, 4 s, ... up to 30 s. */
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
/**
 * A refused connection before anything has answered is most likely a wrong URL or a stack not
 * started, not a restart: a few quiet retries (about 3 s, enough for a proxy that is just starting),
 * then the caller hears of it. Once the server has answered, a refusal is a restart, waited out.
 */
const FIRST_CONTACT_WAITS_MS = [250, 500, 1_000, 1_500] as const;

/** Retry-After as delay-seconds or an HTTP date, in ms; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export class ApiClient {
  private readonly base: URL;
  private readonly maxRetries: number;
  private readonly maxWaitMs: number;
  /** Whether the server has answered anything yet: what tells a wrong address from a restart. */
  private answered = false;

  constructor(private readonly o: ApiClientOptions) {
    this.base = new URL(o.baseUrl.endsWith('/') ? o.baseUrl : o.baseUrl + '/');
    this.maxRetries = o.maxRetries ?? 20;
    this.maxWaitMs = o.maxWaitMs ?? 3_600_000;
  }

  /**
   * Uploads `file` as the multipart field `file`, streamed from disk. A retry sends the same
   * Idempotency-Key, so an upload that did arrive before its answer was lost yields the same job.
   */
  async submit(
    file: { blob: Blob; name: string },
    o: { format: ResultFormat; idempotencyKey: string },
  ): Promise<SubmittedJob> {
    const a = await this.call('POST', 'transcribe', () => {
      const form = new FormData();
      // Before the file, so the server knows it without waiting for the whole upload.
      form.append('format', o.format);
      form.append('file', file.blob, file.name);
      return { body: form, headers: { 'idempotency-key': o.idempotencyKey } };
    });
    if (a.status !== 202 && a.status !== 200) throw this.refusal('POST /transcribe', a);
    return JSON.parse(a.body.toString('utf8')) as SubmittedJob;
  }

  async status(jobId: string): Promise<JobStatus> {
    const a = await this.call('GET', `status/${encodeURIComponent(jobId)}`);
    if (a.status === 404) throw new ClientError('not_found', `no job ${jobId} on ${this.o.baseUrl}`, 404);
    if (a.status !== 200) throw this.refusal(`GET /status/${jobId}`, a);
    return JSON.parse(a.body.toString('utf8')) as JobStatus;
  }

  /** The transcript, or null while the job is not finished (409). */
  async result(jobId: string, format: ResultFormat): Promise<Buffer | null> {
    const a = await this.call('GET', `result/${encodeURIComponent(jobId)}?format=${format}`);
    if (a.status === 200) return a.body;
    if (a.status === 409) return null;
    if (a.status === 404) throw new ClientError('not_found', `no job ${jobId} on ${this.o.baseUrl}`, 404);
    if (a.status === 422) throw new ClientError('job_failed', `job ${jobId} failed: ${errorText(a)}`, 422);
    throw this.refusal(`GET /result/${jobId}`, a);
  }

  private refusal(what: string, a: Answer): ClientError {
    return new ClientError('rejected', `${what} answered ${a.status}: ${errorText(a)}`, a.status);
  }

  /** One request, retried on 429/503 and dropped connections; `build` makes a fresh body per attempt. */
  private async call(
    method: 'GET' | 'POST',
    path: string,
    build?: () => { body: FormData; headers: Record<string, string> },
  ): Promise<Answer> {
    const url = new URL(path, this.base);
    const label = `${method} ${url.pathname}`;
    let firstContactTries = 0;
    for (let attempt = 1; ; attempt++) {
      this.o.signal?.throwIfAborted();
      let wait: { ms: number; status: number | null; reason: string };
      try {
        const extra = build?.();
        const r = await request(url, {
          method,
          body: extra?.body,
          headers: { accept: 'application/json, text/plain, */*', ...extra?.headers },
          signal: this.o.signal,
          dispatcher: this.o.dispatcher,
        });
        const body = Buffer.from(await r.body.arrayBuffer());
        this.answered = true;
        const answer: Answer = { status: r.statusCode, headers: r.headers, body };
        if (r.statusCode !== 429 && r.statusCode !== 503) return answer;
        const after = parseRetryAfter(r.headers['retry-after']);
        wait = { ms: after ?? backoff(attempt), status: r.statusCode, reason: errorText(answer) };
        if (wait.ms > this.maxWaitMs) {
          throw new ClientError(
            'gave_up',
            `${label} answered ${r.statusCode} (${wait.reason}); Retry-After is ${Math.ceil(wait.ms / 1000)} s, longer than we wait`,
            r.statusCode,
          );
        }
      } catch (err) {
        if (this.o.signal?.aborted) throw new ClientError('aborted', 'interrupted');
        if (isClientError(err)) throw err;
        const code = (err as { code?: string }).code ?? '';
        if (!CONNECTION_ERRORS.has(code)) throw err;
        if (code === 'ECONNREFUSED' && !this.answered) {
          const quietMs = FIRST_CONTACT_WAITS_MS[firstContactTries++];
          if (quietMs === undefined) {
            throw new ClientError(
              'refused',
              `cannot connect to ${this.base.origin}: connection refused (${label}, tried ${firstContactTries} times)`,
            );
          }
          await this.pause(quietMs);
          attempt--; // quiet tries are not retries: they neither count nor get reported
          continue;
        }
        wait = { ms: backoff(attempt), status: null, reason: `${code}: ${(err as Error).message}` };
      }
      if (attempt > this.maxRetries) {
        throw new ClientError(
          wait.status === null ? 'unreachable' : 'gave_up',
          `${label}: still ${wait.status ?? wait.reason} after ${attempt} attempts`,
          wait.status,
        );
      }
      this.o.onRetry?.({
        request: label,
        status: wait.status,
        reason: wait.reason,
        waitMs: wait.ms,
        attempt: attempt + 1,
      });
      await this.pause(wait.ms);
    }
  }

  private async pause(ms: number): Promise<void> {
    try {
      await delay(ms, undefined, { signal: this.o.signal });
    } catch {
      throw new ClientError('aborted', 'interrupted');
    }
  }
}

function backoff(attempt: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
}

/** The `error` field of a JSON answer, else its first line of text, else the status. */
function errorText(a: Answer): string {
  const text = a.body.toString('utf8');
  try {
    const json = JSON.parse(text) as { error?: unknown };
    if (typeof json.error === 'string') return json.error;
  } catch {
    // not JSON
  }
  const line = text.split('\n', 1)[0]!.trim();
  return line === '' ? `HTTP ${a.status}` : line.slice(0, 200);
}
