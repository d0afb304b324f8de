// POST /transcribe: stream the upload to DATA_DIR, create the job, enqueue it, answer 202.
// An Idempotency-Key maps to the first job made with it, so a retried request (by a proxy or a
// client whose connection dropped) never starts a second job.
import { rename, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from '../errors.js';
import { isResultFormat, type ResultFormat } from '../jobs/format.js';
import { newJobId } from '../jobs/ids.js';
import { hashIdempotencyKey } from '../jobs/job-store.js';
import { WHISPER_LANGUAGES } from '../media/whisper.js';
import type { ApiDeps } from './deps.js';
import { discardRest, sendJson } from './respond.js';
import { receiveUpload } from './upload.js';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export async function handleTranscribe(req: IncomingMessage, res: ServerResponse, url: URL, deps: ApiDeps) {
  const rawKey = req.headers['idempotency-key'];
  let keyHash: string | null = null;
  if (rawKey !== undefined) {
    const key = Array.isArray(rawKey) ? rawKey[0] : rawKey;
    if (!key || !IDEMPOTENCY_KEY.test(key)) {
      throw new ApiError('bad_request', 'Idempotency-Key must be 1 to 255 visible ASCII characters');
    }
    keyHash = hashIdempotencyKey(key);
    const existing = await deps.store.findIdempotent(keyHash);
    if (existing && (await answerExisting(req, res, existing, deps))) return;
  }

  const id = newJobId();
  const { paths, store } = deps;
  const upload = await receiveUpload(req, paths.uploadPart(id), deps.maxUploadBytes);
  let options: { language: string | null; format: ResultFormat | null };
  try {
    options = jobOptions({ ...Object.fromEntries(url.searchParams), ...upload.fields });
    await rename(paths.uploadPart(id), paths.upload(id));
  } catch (error) {
    await rm(paths.uploadPart(id), { force: true });
    throw error;
  }

  const discard = () => Promise.allSettled([store.delete(id), paths.removeJobFiles(id)]);
  try {
    await store.create({ id, ...options, idempotencyHash: null });
    if (keyHash) {
      const winner = await store.claimIdempotent(keyHash, id);
      if (winner) {
        // A concurrent request with the same key got there first: ours never existed.
        await discard();
        if (await answerExisting(req, res, winner, deps)) return;
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
  sendJson(res, 202, links(id, 'queued'));
}

async function answerExisting(req: IncomingMessage, res: ServerResponse, id: string, deps: ApiDeps) {
  const status = await deps.store.status(id);
  if (!status) return false;
  // The body is a repeat of one we already have: drop it unread (see discardRest).
  sendJson(res, 202, links(id, status.state));
  discardRest(req);
  return true;
}

function links(id: string, status: string) {
  return { job_id: id, status, status_url: `/status/${id}`, result_url: `/result/${id}` };
}

function jobOptions(input: Record<string, string>): { language: string | null; format: ResultFormat | null } {
  const language = input.language?.trim().toLowerCase() || null;
  if (language !== null && language !== 'auto' && !WHISPER_LANGUAGES.has(language)) {
    throw new ApiError(
      'bad_request',
      `language must be a whisper language code or "auto"; got ${JSON.stringify(language)}`,
    );
  }
  const format = input.format?.trim().toLowerCase() || null;
  if (format !== null && !isResultFormat(format)) {
    throw new ApiError('bad_request', `format must be json, txt, srt or vtt; got ${JSON.stringify(format)}`);
  }
  return { language: language === 'auto' ? null : language, format };
}
