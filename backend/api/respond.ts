// Writing answers: JSON bodies, the error body `{"error": …}` with its status from the one
// registry, and discarding what is left of a request answered early.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ApiError, statusOf } from '../errors.js';

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers?: Record<string, string>,
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

export function sendError(res: ServerResponse, error: ApiError, headers?: Record<string, string>): void {
  sendJson(res, statusOf(error.code), { error: error.message, ...error.extra }, headers);
}

/** Most of a body we will not read, in bytes, before we give up on the client and hang up. */
const DISCARD_LIMIT_BYTES = 64 * 1024 * 1024;
const DISCARD_LIMIT_MS = 10_000;

/**
 * After answering before the body ended (413, 415, 400), keep reading and dropping the rest for a
 * while: a client still sending sees our answer instead of a reset connection. The answer must not
 * say `Connection: close` (Node would hang up at once); past the bound, the socket is cut.
 */
export function discardRest(req: IncomingMessage): void {
  if (req.complete || req.destroyed) return;
  let seen = 0;
  const timer = setTimeout(() => req.destroy(), DISCARD_LIMIT_MS).unref();
  req.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > DISCARD_LIMIT_BYTES) req.destroy();
  });
  req.on('close', () => clearTimeout(timer));
  req.resume();
}
