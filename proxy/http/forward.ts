// Sends one request (its body already read) to its upstream through undici's dispatch API, and
// streams the response back with backpressure. It reports how the call went so the caller can feed the
// breaker; it never decides policy itself.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher, Pool } from 'undici';
import type { CallOutcome } from '../../core/breaker/circuit-breaker.js';
import { classifyUpstreamError, errorBody, type ProxyErrorCode, statusOf } from './errors.js';
import { connectionTokens, HOP_BY_HOP } from './request-headers.js';

/** How a forwarded call ended, from the breaker's point of view. */
export type Outcome = CallOutcome;

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
  /** Request headers as a flat [name, value, …] list, already checked (request-headers.ts). */
  readonly headers: string[];
  /** The whole body, already read (request-body.ts), or null for none. */
  readonly body: Buffer | Readable | null;
  /** Extra response headers (rate limit headers), or null. */
  readonly responseHeaders: OutgoingHttpHeaders | null;
  /** Longest the client may keep the response from being written (nginx's send_timeout). */
  readonly sendTimeoutMs: number;
  readonly done: (outcome: Outcome, status: number) => void;
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
  if (res.headersSent) {
    res.destroy();
    return statusOf(code);
  }
  return sendAnswer(res, statusOf(code), errorBody(code, extra), headers);
}

/** Writes a JSON answer the proxy makes itself (an error, or a route's rejection); returns its status. */
export function sendAnswer(
  res: ServerResponse,
  status: number,
  body: string,
  headers?: OutgoingHttpHeaders,
): number {
  if (res.headersSent) {
    res.destroy();
    return status;
  }
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
  return status;
}

// undici refuses these requests before a byte is sent (an invalid header, say): the request is
// the client's fault and says nothing about the upstream.
const REFUSED_BY_CLIENT = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);

/** One per forwarded request: undici calls it back as the response arrives. */
class ForwardHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private status = 0;
  private settled = false;
  private clientGone = false;
  private sendTimer: NodeJS.Timeout | null = null;
  private readonly resume = (): void => {
    if (this.sendTimer !== null) clearTimeout(this.sendTimer);
    this.sendTimer = null;
    this.controller?.resume();
  };

  constructor(private readonly f: ForwardRequest) {
    f.res.on('close', () => {
      if (this.sendTimer !== null) clearTimeout(this.sendTimer);
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
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) return; // 1xx: Node's server handles 100-continue with the client itself
    try {
      this.f.res.writeHead(statusCode, statusMessage, responseHeadersFrom(headers, this.f.responseHeaders));
    } catch (err) {
      // A header Node will not write (an invalid character in a name or value): the upstream's
      // answer cannot be relayed, which is the upstream's failure.
      controller.abort(err as Error);
      return;
    }
    this.status = statusCode;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.f.res.write(chunk)) return;
    // The client reads slower than the upstream sends: stop reading the upstream (TCP pushes back on
    // it), and give up on a client that takes no more for sendTimeoutMs, so it cannot hold an
    // upstream connection without bound.
    controller.pause();
    this.f.res.once('drain', this.resume);
    this.sendTimer = setTimeout(() => this.f.res.destroy(), this.f.sendTimeoutMs);
  }

  onResponseEnd(): void {
    this.f.res.end();
    this.settle(this.f.target.failureStatuses.has(this.status) ? 'failure' : 'success', this.status);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.settled) return;
    const { res } = this.f;
    const code = (err as { code?: unknown }).code;
    if (this.clientGone) {
      this.settle('release', this.status === 0 ? 499 : this.status);
    } else if (this.status !== 0) {
      // The response had started: all we can do is cut it, so the client sees it truncated.
      res.destroy(err);
      this.settle('failure', 502);
    } else if (typeof code === 'string' && REFUSED_BY_CLIENT.has(code)) {
      res.shouldKeepAlive = false;
      this.settle('release', sendError(res, 'bad_request'));
    } else {
      this.settle('failure', sendError(res, classifyUpstreamError(err), { upstream: this.f.target.name }));
    }
  }

  private settle(outcome: Outcome, status: number): void {
    this.settled = true;
    this.f.done(outcome, status);
  }
}

export function forward(f: ForwardRequest): void {
  f.target.pool.dispatch(
    {
      path: f.path,
      method: f.req.method ?? 'GET',
      headers: f.headers,
      body: f.body,
      headersTimeout: f.target.responseTimeoutMs,
      bodyTimeout: f.target.idleTimeoutMs,
    },
    new ForwardHandler(f),
  );
}
