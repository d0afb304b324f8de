// `floodgate transcribe`'s work, without its presentation: upload (or take an existing job id),
// poll /status until the job ends, then fetch the transcript in the format asked for. Polling starts
// at pollIntervalMs and slows down while nothing changes, so a long job costs its status route (and
// the proxy's limit on it) little. Progress, retries and the job id are reported through callbacks.
import { randomUUID } from 'node:crypto';
import { openAsBlob } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { FloodgateError, hasBrand } from '../../core/errors.js';
import {
  ApiClient,
  ClientError,
  isClientError,
  type JobStatus,
  type ResultFormat,
  type RetryNotice,
  type SubmittedJob,
} from './http.js';

export interface TranscribeOptions {
  /** The API's base URL (the proxy's, usually). */
  readonly url: string;
  /** The audio to upload; ignored when `jobId` is given. */
  readonly audio?: string | undefined;
  /** Resume: follow this job instead of uploading. */
  readonly jobId?: string | undefined;
  readonly format: ResultFormat;
  readonly signal?: AbortSignal;
  /** First gap between two polls (default 1 s); it grows while the status stays the same. */
  readonly pollIntervalMs?: number;
  /** Longest gap between two polls (default 5 s). */
  readonly maxPollIntervalMs?: number;
  readonly onSubmitted?: (job: SubmittedJob) => void;
  readonly onStatus?: (status: JobStatus) => void;
  readonly onRetry?: (notice: RetryNotice) => void;
  readonly dispatcher?: Dispatcher;
}

export interface Transcript {
  readonly jobId: string;
  readonly body: Buffer;
  readonly status: JobStatus;
}

/** Thrown for Ctrl-C (the signal): the job, if one was made, keeps running; `jobId` says which. */
export class Interrupted extends FloodgateError<'interrupted'> {
  constructor(readonly jobId: string | null) {
    super(
      'Interrupted',
      'interrupted',
      jobId === null ? 'interrupted before the job was created' : `interrupted; job ${jobId} keeps running`,
    );
  }
}

export function isInterrupted(error: unknown): error is Interrupted {
  return hasBrand(error, 'Interrupted');
}

const MIME_BY_EXTENSION: Readonly<Record<string, string>> = {
  '.wav': 'audio/wav',
  '.mp3': 'audio/mpeg',
  '.m4a': 'audio/mp4',
  '.aac': 'audio/aac',
  '.flac': 'audio/flac',
  '.ogg': 'audio/ogg',
  '.oga': 'audio/ogg',
  '.opus': 'audio/ogg',
  '.webm': 'audio/webm',
  '.mp4': 'video/mp4',
  '.mkv': 'video/x-matroska',
  '.mov': 'video/quicktime',
};

/** The part's type: the API refuses anything that is not audio (or video, or octet-stream). */
export function audioMimeType(file: string): string {
  return MIME_BY_EXTENSION[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** Result fetches answered 409 right after `completed` (a replica catching up) before we give up. */
const NOT_READY_RETRIES = 10;

export async function transcribe(o: TranscribeOptions): Promise<Transcript> {
  const api = new ApiClient({
    baseUrl: o.url,
    signal: o.signal,
    onRetry: o.onRetry,
    dispatcher: o.dispatcher,
  });
  const first = o.pollIntervalMs ?? 1_000;
  const longest = o.maxPollIntervalMs ?? 5_000;
  let jobId: string | null = o.jobId ?? null;
  const sleep = (ms: number) => delay(ms, undefined, { signal: o.signal });

  try {
    if (jobId === null) {
      if (!o.audio) throw new ClientError('rejected', 'nothing to do: give an audio file or --job ID');
      const size = (await stat(o.audio)).size;
      if (size === 0) throw new ClientError('rejected', `${o.audio} is empty`);
      const blob = await openAsBlob(o.audio, { type: audioMimeType(o.audio) });
      const job = await api.submit(
        { blob, name: basename(o.audio) },
        { format: o.format, idempotencyKey: randomUUID() },
      );
      jobId = job.job_id;
      o.onSubmitted?.(job);
    }

    let gap = first;
    let seen = '';
    let status: JobStatus;
    for (;;) {
      status = await api.status(jobId);
      o.onStatus?.(status);
      if (status.state === 'completed') break;
      if (status.state === 'failed') {
        const why = status.error ? `${status.error.message} (${status.error.code})` : 'no reason given';
        throw new ClientError('job_failed', `job ${jobId} failed at ${status.stage}: ${why}`);
      }
      const now = `${status.state}|${status.stage}|${status.progress}|${status.segments_done}`;
      gap = now === seen ? Math.min(longest, Math.round(gap * 1.5)) : first;
      seen = now;
      await sleep(gap);
    }

    for (let attempt = 0; ; attempt++) {
      const body = await api.result(jobId, o.format);
      if (body !== null) return { jobId, body, status };
      if (attempt >= NOT_READY_RETRIES) {
        throw new ClientError('rejected', `job ${jobId} is completed but its result is not ready`);
      }
      await sleep(first);
    }
  } catch (err) {
    if (o.signal?.aborted && (isAbort(err) || (isClientError(err) && err.code === 'aborted'))) {
      throw new Interrupted(jobId);
    }
    throw err;
  }
}

function isAbort(err: unknown): boolean {
  return (err as { name?: string }).name === 'AbortError';
}
