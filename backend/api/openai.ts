// The OpenAI-compatible API: POST /v1/audio/transcriptions answers with the transcript, as OpenAI's
// does, and GET /v1/models lists the model. A transcription is an ordinary durable job, made by
// submitJob like POST /transcribe's; the request then waits for it to end (JobWaiter). Nothing about
// the job depends on the request: a client that goes away, a wait that runs out, or a backend that
// restarts leaves the job to run, and the client gets it back with the same Idempotency-Key (a new
// request finds the job and waits for it again) or from /result/ID.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from '../errors.js';
import type { Transcript } from '../jobs/format.js';
import type { JobStatus } from '../jobs/job-store.js';
import type { WaitOutcome } from '../jobs/job-waiter.js';
import {
  isOpenAIResponseFormat,
  OPENAI_CONTENT_TYPE,
  OPENAI_RESPONSE_FORMATS,
  type OpenAIResponseFormat,
  renderOpenAI,
} from '../jobs/openai-format.js';
import type { ApiDeps, EngineInfo } from './deps.js';
import { sendOpenAIError } from './openai-errors.js';
import { sendJson } from './respond.js';
import { type JobLinks, type JobOptions, languageOption, submitJob } from './transcribe.js';

/** The name OpenAI's clients ask for; it means the installed model. */
export const OPENAI_MODEL_ALIAS = 'whisper-1';

interface TranscriptionRequest {
  job: JobOptions;
  responseFormat: OpenAIResponseFormat;
}

export async function handleOpenAITranscription(
  req: IncomingMessage,
  res: ServerResponse,
  deps: ApiDeps,
): Promise<void> {
  // Refused before the upload is read: a job now would only wait in the queue.
  const engine = await deps.engine();
  if (engine.notReady !== null) {
    deps.logger.warn({ reason: engine.notReady }, 'transcription refused: engine not ready');
    throw new ApiError(
      'unavailable',
      'The transcription engine is not ready (no model installed, or whisper.cpp missing); the backend /readyz says why',
    );
  }
  const { links, parsed } = await submitJob(req, deps, (fields) => transcriptionRequest(fields, engine));
  const headers: Record<string, string> = { 'x-job-id': links.job_id };
  const retryable = req.headers['idempotency-key'] !== undefined;

  const gone = new AbortController();
  const onClose = (): void => gone.abort();
  // Before any answer, 'close' means the client went away; it may have gone already, during the
  // store's round trips, and then there is no one to wait for.
  res.once('close', onClose);
  if (res.destroyed) gone.abort();
  deps.metrics.waitingRequests.inc();
  let outcome: WaitOutcome;
  try {
    outcome = await deps.waiter.wait(links.job_id, {
      timeoutMs: deps.transcriptionWaitMs,
      signal: gone.signal,
    });
  } finally {
    res.off('close', onClose);
    deps.metrics.waitingRequests.dec();
  }
  const log = deps.logger.child({ job_id: links.job_id });

  switch (outcome.kind) {
    case 'aborted':
      log.info('client went away while waiting; the job goes on');
      return;
    case 'ended': {
      if (outcome.status.state === 'failed') {
        return sendOpenAIError(res, failure(outcome.status, links), {
          ...headers,
          'x-should-retry': 'false',
        });
      }
      const json = await deps.store.resultJson(links.job_id);
      if (json === null) break;
      const body = renderOpenAI(JSON.parse(json) as Transcript, parsed.responseFormat);
      res.writeHead(200, {
        'content-type': OPENAI_CONTENT_TYPE[parsed.responseFormat],
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
        ...headers,
      });
      res.end(body);
      return;
    }
    case 'timeout':
    case 'closed': {
      const seconds = Math.round(deps.transcriptionWaitMs / 1000);
      const what =
        outcome.kind === 'timeout'
          ? `The transcript of job ${links.job_id} is not ready after ${seconds} s`
          : `The server is shutting down before the transcript of job ${links.job_id} is ready`;
      const error = new ApiError(
        outcome.kind === 'timeout' ? 'wait_timeout' : 'unavailable',
        `${what}; the job goes on. Send the request again with the same Idempotency-Key to wait ` +
          `for it again, or GET ${links.result_url} once GET ${links.status_url} says "completed".`,
        jobExtra(links),
      );
      // Only a retry that carries the key finds this job; without it, it would start another.
      return sendOpenAIError(res, error, { ...headers, 'x-should-retry': String(retryable) });
    }
    case 'gone':
      break;
  }
  sendOpenAIError(
    res,
    new ApiError('job_cancelled', `Job ${links.job_id} was deleted before its transcript was ready`, {
      job_id: links.job_id,
    }),
    { ...headers, 'x-should-retry': 'false' },
  );
}

/** GET /v1/models: the alias and the installed model; an empty list while none is installed. */
export async function handleModels(res: ServerResponse, deps: ApiDeps): Promise<void> {
  sendJson(res, 200, { object: 'list', data: modelList(await deps.engine()) });
}

/** GET /v1/models/ID. */
export async function handleModel(id: string, res: ServerResponse, deps: ApiDeps): Promise<void> {
  const model = modelList(await deps.engine()).find((m) => m.id === decodeId(id));
  if (!model) throw modelNotFound(decodeId(id) ?? id);
  sendJson(res, 200, model);
}

function modelList(engine: EngineInfo) {
  const { model } = engine;
  if (!model) return [];
  const ids = [...new Set([OPENAI_MODEL_ALIAS, model.id])];
  return ids.map((id) => ({ id, object: 'model', created: model.created, owned_by: 'floodgate' }));
}

function transcriptionRequest(fields: Record<string, string>, engine: EngineInfo): TranscriptionRequest {
  const model = fields.model?.trim();
  if (!model) {
    throw new ApiError('bad_request', `model is required: "${OPENAI_MODEL_ALIAS}"`, { param: 'model' });
  }
  if (model !== OPENAI_MODEL_ALIAS && model !== engine.model?.id) throw modelNotFound(model);

  const responseFormat = fields.response_format?.trim() || 'json';
  if (!isOpenAIResponseFormat(responseFormat)) {
    throw new ApiError(
      'bad_request',
      `response_format must be one of ${OPENAI_RESPONSE_FORMATS.join(', ')}; got ${JSON.stringify(responseFormat)}`,
      { param: 'response_format' },
    );
  }
  if (fields.stream !== undefined && fields.stream.trim().toLowerCase() !== 'false') {
    throw new ApiError('bad_request', `stream is not supported with ${OPENAI_MODEL_ALIAS}`, {
      param: 'stream',
    });
  }
  if (fields.temperature !== undefined) temperature(fields.temperature);
  let language: string | null;
  try {
    language = languageOption(fields.language);
  } catch (error) {
    throw new ApiError('bad_request', (error as Error).message, { param: 'language' });
  }
  return { job: { language, format: null, prompt: prompt(fields.prompt) }, responseFormat };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** The prompt, passed to whisper.cpp as one argument: no NUL (no argv holds one), no control bytes. */
function prompt(value: string | undefined): string | null {
  const text = value?.trim() ?? '';
  if (text === '') return null;
  if (CONTROL.test(text)) {
    throw new ApiError('bad_request', 'prompt must not hold control characters', { param: 'prompt' });
  }
  return text;
}

/**
 * OpenAI's temperature, 0 to 1, checked and then not used: the bundled whisper.cpp has no flag for
 * it, and decodes from 0 with its own fallback (or none, with WHISPER_FAST_DECODE).
 */
function temperature(value: string): number {
  const text = value.trim();
  const t = Number(text);
  if (text === '' || !Number.isFinite(t) || t < 0 || t > 1) {
    throw new ApiError(
      'bad_request',
      `temperature must be a number from 0 to 1; got ${JSON.stringify(value)}`,
      {
        param: 'temperature',
      },
    );
  }
  return t;
}

function modelNotFound(model: string): ApiError {
  return new ApiError(
    'model_not_found',
    `The model ${JSON.stringify(model)} does not exist on this server; use "${OPENAI_MODEL_ALIAS}" (GET /v1/models lists them)`,
  );
}

/** A failed job in OpenAI's terms: bad input is the client's (422, 400), the rest the server's (500). */
function failure(status: JobStatus, links: JobLinks): ApiError {
  const code = status.error?.code;
  const reason = status.error?.message ?? 'the job failed';
  const extra = jobExtra(links);
  if (code === 'invalid_audio')
    return new ApiError('job_failed', `Invalid audio: ${reason}`, { ...extra, param: 'file' });
  if (code === 'invalid_argument') return new ApiError('bad_request', reason, extra);
  return new ApiError('engine_failed', `Transcription failed: ${reason}`, extra);
}

function jobExtra(links: JobLinks) {
  return { job_id: links.job_id, status_url: links.status_url, result_url: links.result_url };
}

function decodeId(id: string): string | null {
  try {
    return decodeURIComponent(id);
  } catch {
    return null;
  }
}
