// The backend's HTTP API (the README's "The backend") on plain node:http: a route table, and one place that turns
// errors into `{"error": …}` answers (in OpenAI's shape under /v1/, where OpenAI's clients call).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ApiError, isApiError } from '../errors.js';
import type { ApiDeps } from './deps.js';
import { handleHealthz, handleMetrics, handleReadyz } from './health.js';
import { handleDelete, handleResult, handleStatus } from './jobs.js';
import { handleModel, handleModels, handleOpenAITranscription } from './openai.js';
import { sendOpenAIError } from './openai-errors.js';
import { discardRest, sendError } from './respond.js';
import { handleTranscribe } from './transcribe.js';
import { isClientAborted } from './upload.js';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL, id: string) => Promise<void> | void;

interface Route {
  /** Exact path, or a prefix ending in "/" followed by a job id. */
  path: string;
  method: string;
  handler: Handler;
}

export function createApiServer(deps: ApiDeps): Server {
  const routes: Route[] = [
    {
      path: '/transcribe',
      method: 'POST',
      handler: (req, res, url) => handleTranscribe(req, res, url, deps),
    },
    { path: '/status/', method: 'GET', handler: (_req, res, _url, id) => handleStatus(id, res, deps) },
    { path: '/result/', method: 'GET', handler: (_req, res, url, id) => handleResult(id, url, res, deps) },
    { path: '/jobs/', method: 'DELETE', handler: (req, res, _url, id) => handleDelete(id, req, res, deps) },
    {
      path: '/v1/audio/transcriptions',
      method: 'POST',
      handler: (req, res) => handleOpenAITranscription(req, res, deps),
    },
    { path: '/v1/models', method: 'GET', handler: (_req, res) => handleModels(res, deps) },
    { path: '/v1/models/', method: 'GET', handler: (_req, res, _url, id) => handleModel(id, res, deps) },
    { path: '/healthz', method: 'GET', handler: (_req, res) => handleHealthz(res) },
    { path: '/readyz', method: 'GET', handler: (_req, res) => handleReadyz(res, deps) },
    { path: '/metrics', method: 'GET', handler: (_req, res) => handleMetrics(res, deps) },
  ];

  const server = createServer((req, res) => {
    void dispatch(req, res).catch((error) => answerError(req, res, error));
  });
  // Large uploads on slow links: the default 5-minute request timeout would cut them off.
  server.requestTimeout = 30 * 60_000;

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://backend.invalid');
    const path = url.pathname;
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const matching = routes.filter((r) => (r.path.endsWith('/') ? path.startsWith(r.path) : path === r.path));
    if (matching.length === 0) throw new ApiError('not_found', 'Not found');
    const route = matching.find((r) => r.method === method);
    if (!route) {
      throw new ApiError('method_not_allowed', 'Method not allowed', {
        allow: matching.map((r) => r.method),
      });
    }
    const id = route.path.endsWith('/') ? path.slice(route.path.length) : '';
    await route.handler(req, res, url, id);
  }

  function answerError(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    if (isClientAborted(error)) {
      deps.logger.info({ url: req.url }, 'client closed the connection mid-upload');
      return;
    }
    if (!isApiError(error))
      deps.logger.error({ err: error, url: req.url, method: req.method }, 'request failed');
    const apiError = isApiError(error)
      ? error
      : isRedisDown(error)
        ? new ApiError('unavailable', 'Job store unavailable')
        : new ApiError('internal', 'Internal error');
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    if (speaksOpenAI(req)) sendOpenAIError(res, apiError);
    else sendError(res, apiError);
    // Answered before the body ended: the client may still be sending. No `Connection: close`:
    // Node hangs up as soon as such an answer is written, and a client still sending would meet a
    // reset instead of it. The rest is read and dropped (bounded), and the connection lives on.
    if (!req.complete) discardRest(req);
  }

  return server;
}

/** Paths under /v1/ are OpenAI's API, whose clients parse errors in OpenAI's shape. */
function speaksOpenAI(req: IncomingMessage): boolean {
  try {
    return new URL(req.url ?? '/', 'http://backend.invalid').pathname.startsWith('/v1/');
  } catch {
    return false;
  }
}

/** ioredis failing a command because Redis cannot be reached: a 503, not a bug. */
function isRedisDown(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { code?: unknown; message?: unknown };
  const message = typeof e.message === 'string' ? e.message : '';
  return (
    error.constructor?.name === 'MaxRetriesPerRequestError' ||
    e.code === 'ECONNREFUSED' ||
    message.startsWith('Reached the max retries per request limit') ||
    message.startsWith('Connection is closed')
  );
}
