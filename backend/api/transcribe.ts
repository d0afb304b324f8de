// POST /transcribe: stream the upload to DATA_DIR, create the job, enqueue it, answer 202. The
// OpenAI-style API makes its jobs here too (submitJob), so every job is made the same way.
// An Idempotency-Key maps to the first job its client made with it, so a retried request (by a
// proxy or a client whose connection dropped) never starts a second job; the same key with another
// file or other options is refused with 422, never answered with a job for a different request.
import { createHash } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from '../errors.js';
import { isResultFormat, type ResultFormat } from '../jobs/format.js';
import { newJobId } from '../jobs/ids.js';
import { hashIdempotencyKey, type IdempotentJob } from '../jobs/job-store.js';
import { WHISPER_LANGUAGES } from '../media/whisper.js';
import type { ApiDeps } from './deps.js';
import { sendJson } from './respond.js';
import { receiveUpload } from './upload.js';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** What a job runs with, and what makes two requests with one Idempotency-Key the same. */
export interface JobOptions {
  language: string | null;
  format: ResultFormat | null;
  /** Whisper's prompt; only the OpenAI-style API sets it. */
  prompt?: string | null;
}

/** A job's id and where to follow it. */
export interface JobLinks {
  job_id: string;
  status: string;
  status_url: string;
  result_url: string;
}

export async function handleTranscribe(req: IncomingMessage, res: ServerResponse, url: URL, deps: ApiDeps) {
  const { links } = await submitJob(req, deps, (fields) => ({
    job: jobOptions({ ...Object.fromEntries(url.searchParams), ...fields }),
  }));
  sendJson(res, 202, links);
}

/**
 * The one way a job is made, for every API: streams the upload to DATA_DIR, reads the job's
 * options from the form fields with `parse` (which throws an ApiError to refuse them), creates
 * the job and queues it, or finds the job the request's Idempotency-Key already made. Resolves
 * once the job is durable; `parsed` is what `parse` returned.
 */
export async function submitJob<T extends { job: JobOptions }>(
  req: IncomingMessage,
  deps: ApiDeps,
  parse: (fields: Record<string, string>) => T,
): Promise<{ links: JobLinks; parsed: T }> {
  // Checked before the upload, so a bad key costs no transfer.
  const keyHash = idempotencyKeyHash(req);
  const id = newJobId();
  const { paths, store } = deps;
  const upload = await receiveUpload(req, paths.uploadPart(id), deps.maxUploadBytes);
  let parsed: T;
  try {
    parsed = parse(upload.fields);
    await rename(paths.uploadPart(id), paths.upload(id));
  } catch (error) {
    await rm(paths.uploadPart(id), { force: true });
    throw error;
  }
  const options = parsed.job;

  const request = fingerprint(upload.sha256, options);
  const discard = () => Promise.allSettled([store.delete(id), paths.removeJobFiles(id)]);
  try {
    if (keyHash) {
      const earlier = await sameRequestJob(await store.findIdempotent(keyHash), request, deps);
      if (earlier) {
        await discard();
        return { links: earlier, parsed };
      }
    }
    await store.create({ id, ...options, idempotencyHash: null });
    if (keyHash) {
      const winner = await store.claimIdempotent(keyHash, { job: id, request });
      if (winner) {
        // A concurrent request with the same key got there first: ours never existed.
        await discard();
        const earlier = await sameRequestJob(winner, request, deps);
        if (earlier) return { links: earlier, parsed };
        throw new ApiError(
          'unavailable',
          'Idempotency-Key is being used by a job that is still starting; retry',
        );
      }
      // Recorded on the job so DELETE releases the key with it.
      await store.linkIdempotency(id, keyHash);
    }
    await deps.queue.add(id);
  } catch (error) {
    // No job without its queue entry, and no upload without its job.
    await discard();
    throw error;
  }
  deps.logger.info({ job_id: id, bytes: upload.bytes, ...options }, 'job queued');
  return { links: links(id, 'queued'), parsed };
}

/** The stored hash of the request's Idempotency-Key in its client's scope; null without one. */
function idempotencyKeyHash(req: IncomingMessage): string | null {
  const raw = req.headers['idempotency-key'];
  if (raw === undefined) return null;
  const key = Array.isArray(raw) ? raw[0] : raw;
  if (!key || !IDEMPOTENCY_KEY.test(key)) {
    throw new ApiError('bad_request', 'Idempotency-Key must be 1 to 255 visible ASCII characters');
  }
  return hashIdempotencyKey(clientScope(req), key);
}

/**
 * Whose Idempotency-Keys these are. A credential (Authorization, else X-API-Key) when the request
 * carries one: it names the client wherever it connects from, and only its holder can present it.
 * Otherwise the X-Forwarded-For chain: the backend is reached through the proxy, which writes
 * that header itself, ending it with the address it saw, so a client can lengthen its own chain
 * (and only split its own scope) but never end it with another client's address. The TCP peer
 * counts only without the header: behind the proxy it is the proxy, the same for every client, and
 * a retry through another proxy replica must still find its job.
 */
function clientScope(req: IncomingMessage): string {
  const credential = req.headers.authorization ?? first(req.headers['x-api-key']);
  if (credential) return `credential ${credential}`;
  const forwarded = req.headers['x-forwarded-for'];
  const chain = (Array.isArray(forwarded) ? forwarded.join(',') : (forwarded ?? ''))
    .split(',')
    .map((hop) => hop.trim())
    .filter(Boolean)
    .join(', ');
  return chain ? `forwarded ${chain}` : `peer ${req.socket.remoteAddress ?? ''}`;
}

/**
 * What makes two requests the same one: the stored bytes and the options the job runs with. A
 * prompt counts only when there is one, so requests without it keep the fingerprint they always had.
 */
function fingerprint(sha256: string, options: JobOptions): string {
  const { language, format, prompt } = options;
  return createHash('sha256')
    .update(JSON.stringify(prompt ? { sha256, language, format, prompt } : { sha256, language, format }))
    .digest('hex');
}

/**
 * The answer for a request whose key already names a job: that job when the request is the same
 * one again (null when the job is gone); a 422 when it is another.
 */
async function sameRequestJob(earlier: IdempotentJob | null, request: string, deps: ApiDeps) {
  if (!earlier) return null;
  if (earlier.request !== request) {
    throw new ApiError('idempotency_mismatch', 'Idempotency-Key reused with a different request');
  }
  const status = await deps.store.status(earlier.job);
  return status ? links(earlier.job, status.state) : null;
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function links(id: string, status: string): JobLinks {
  return { job_id: id, status, status_url: `/status/${id}`, result_url: `/result/${id}` };
}

/** A whisper language code, "auto" or nothing, from a form field or query parameter; null: detect. */
export function languageOption(value: string | undefined): string | null {
  const language = value?.trim().toLowerCase() || null;
  if (language !== null && language !== 'auto' && !WHISPER_LANGUAGES.has(language)) {
    throw new ApiError(
      'bad_request',
      `language must be a whisper language code or "auto"; got ${JSON.stringify(language)}`,
    );
  }
  return language === 'auto' ? null : language;
}

function jobOptions(input: Record<string, string>): JobOptions {
  const language = languageOption(input.language);
  const format = input.format?.trim().toLowerCase() || null;
  if (format !== null && !isResultFormat(format)) {
    throw new ApiError('bad_request', `format must be json, txt, srt or vtt; got ${JSON.stringify(format)}`);
  }
  return { language, format };
}
