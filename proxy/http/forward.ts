// Streams one request to its upstream through undici's dispatch API and the response back,
// with backpressure both ways. It reports how the call went so the caller can feed the
// breaker; it never decides policy itself.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import type { Dispatcher, Pool } from 'undici';
import { classifyUpstreamError, errorBody, type ProxyErrorCode, statusOf } from '../core/errors.js';

/** How a forwarded call ended, from the breaker's point of view. */
export type Outcome = 'success' | 'failure' | 'aborted';

export interface ForwardTarget {
  readonly name: string;
  readonly pool: Pool;
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly failureStatuses: ReadonlySet<number>;
}

export interface ForwardRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly target: ForwardTarget;
  readonly path: string;
  /** Request headers as a flat [name, value, …] list, already cleaned. */
  readonly headers: string[];
  /** Extra response headers (rate limit headers), or null. */
  readonly responseHeaders: OutgoingHttpHeaders | null;
  /** Body size limit in bytes (Infinity for none); a declared Content-Length was checked by the caller. */
  readonly maxBody: number;
  readonly done: (outcome: Outcome, status: number) => void;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Node answers 100-continue itself; undici refuses to send the header on.
  'expect',
]);

/** Tokens listed in a Connection header are hop-by-hop for this message too. */
function connectionTokens(value: string | string[] | undefined): Set<string> | null {
  // The usual values name no header: skip the split (every keep-alive upstream response has one).
  if (!value || value === 'keep-alive' || value === 'close') return null;
  const tokens = (Array.isArray(value) ? value.join(',') : value).toLowerCase().split(',');
  const set = new Set<string>();
  for (const t of tokens) {
    const name = t.trim();
    if (name && name !== 'close' && name !== 'keep-alive') set.add(name);
  }
  return set.size > 0 ? set : null;
}

/**
 * The headers to send upstream: the client's, minus hop-by-hop ones and any X-Forwarded-*
 * we set ourselves, as a flat list (cheaper for undici than an object).
 */
export function upstreamHeaders(req: IncomingMessage, skip: ReadonlySet<string>): string[] {
  const raw = req.rawHeaders;
  const extra = connectionTokens(req.headers.connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || skip.has(name) || extra?.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

function responseHeadersFrom(
  headers: IncomingHttpHeaders,
  extra: OutgoingHttpHeaders | null,
): OutgoingHttpHeaders {
  const skip = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || skip?.has(name)) continue;
    out[name] = headers[name];
  }
  if (extra) Object.assign(out, extra);
  return out;
}

export function sendError(
  res: ServerResponse,
  code: ProxyErrorCode,
  extra?: Record<string, unknown>,
  headers?: OutgoingHttpHeaders,
): number {
  const status = statusOf(code);
  if (res.headersSent) {
    res.destroy();
    return status;
  }
  const body = errorBody(code, extra);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
  return status;
}

/** One per forwarded request: undici calls it back as the response arrives. */
class ForwardHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private status = 0;
  private settled = false;
  private clientGone = false;
  private tooLarge = false;
  private readonly resume = (): void => this.controller?.resume();

  constructor(private readonly f: ForwardRequest) {
    f.res.on('close', () => {
      if (this.settled) return;
      this.clientGone = true;
      this.controller?.abort(new Error('client closed the connection'));
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientGone) controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) return; // 1xx: Node's server handles 100-continue with the client itself
    this.status = statusCode;
    this.f.res.writeHead(statusCode, statusMessage, responseHeadersFrom(headers, this.f.responseHeaders));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.f.res.write(chunk)) {
      controller.pause();
      this.f.res.once('drain', this.resume);
    }
  }

  onResponseEnd(): void {
    this.f.res.end();
    this.settle(this.f.target.failureStatuses.has(this.status) ? 'failure' : 'success', this.status);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.settled) return;
    const { res } = this.f;
    if (this.clientGone) {
      this.settle('aborted', 499);
    } else if (this.tooLarge) {
      res.shouldKeepAlive = false;
      this.settle('aborted', sendError(res, 'PAYLOAD_TOO_LARGE', { max_body: this.f.maxBody }));
    } else if (this.status !== 0) {
      // The response had started: all we can do is cut it, so the client sees it truncated.
      res.destroy(err);
      this.settle('failure', 502);
    } else {
      const code = classifyUpstreamError(err);
      this.settle('failure', sendError(res, code, { upstream: this.f.target.name }));
    }
  }

  /**
   * A chunked body passes through a counter that fails once it exceeds max_body. It is piped,
   * not pipelined, so failing the counter aborts the upstream call but leaves the client's
   * socket open for our 413.
   */
  limitedBody(req: IncomingMessage, max: number): Transform {
    let seen = 0;
    const counter = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        seen += chunk.length;
        if (seen <= max) return cb(null, chunk);
        this.tooLarge = true;
        req.unpipe(counter);
        cb(new Error('request body over max_body'));
      },
    });
    return req.pipe(counter);
  }

  private settle(outcome: Outcome, status: number): void {
    this.settled = true;
    this.f.done(outcome, status);
  }
}

export function forward(f: ForwardRequest): void {
  const { req, target } = f;
  const length = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  const hasBody = chunked || (length !== undefined && length !== '0');
  const handler = new ForwardHandler(f);
  // A declared Content-Length is enforced by Node's parser; only chunked bodies need counting.
  const body = !hasBody
    ? null
    : chunked && f.maxBody !== Number.POSITIVE_INFINITY
      ? handler.limitedBody(req, f.maxBody)
      : req;
  target.pool.dispatch(
    {
      path: f.path,
      method: req.method ?? 'GET',
      headers: f.headers,
      body,
      headersTimeout: target.responseTimeoutMs,
      bodyTimeout: target.idleTimeoutMs,
    },
    handler,
  );
}
