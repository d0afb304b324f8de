// The data plane: route → limits → breaker → forward, in that order, for every request.
// The runtime is read once at the start of a request, so a reload swaps policies between
// requests and an in-flight request finishes under the policy it started with.
import { randomUUID } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Logger } from 'pino';
import { errorBody, statusOf } from '../core/errors.js';
import type { ProxyMetrics } from '../observability/metrics.js';
import { isStoreUnavailable } from '../ratelimit/guarded-store.js';
import { limitHeaders, rejection } from '../ratelimit/headers.js';
import type { Decision } from '../ratelimit/store.js';
import { canonicalIp } from './client-ip.js';
import { forward, type Outcome, sendError, upstreamHeaders } from './forward.js';
import { normalizeTarget } from './normalize-path.js';
import type { RouteRuntime, Runtime } from './runtime.js';

/** What metrics record for a request whose client went away before it was answered (nginx's 499). */
const CLIENT_CLOSED = 499;

const OWN_HEADERS = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']);

export interface DataPlaneDeps {
  readonly runtime: () => Runtime;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  /** Hashes an identity for logs: raw IPs and API keys never reach a log line. */
  readonly hashId: (id: string) => string;
  /** How long a client may take to send its request headers (slowloris); default 15 s. */
  readonly headersTimeoutMs?: number;
}

const DEFAULT_HEADERS_TIMEOUT_MS = 15_000;

type Admission =
  | { readonly ok: true; readonly headers: Record<string, string> | null }
  | { readonly ok: false; readonly status: number };

const PASS: Admission = { ok: true, headers: null };

interface PeerTrust {
  readonly resolver: Runtime['clientIp'];
  readonly peer: string;
  readonly trusted: boolean;
}

export class DataPlane {
  readonly server: Server;
  private readonly wsProxy = httpProxy.createProxyServer({ ws: true, xfwd: false });
  private readonly wsSettle = new WeakMap<IncomingMessage, (status: number) => void>();
  private inFlight = 0;
  private readonly peers = new WeakMap<object, PeerTrust>();

  constructor(private readonly d: DataPlaneDeps) {
    const headersTimeout = d.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
    const options = {
      requestTimeout: 0,
      headersTimeout,
      // Node looks for expired headers only this often (30 s by default), so a slowloris connection
      // would otherwise live up to headersTimeout + 30 s.
      connectionsCheckingInterval: Math.min(1_000, headersTimeout),
    };
    this.server = createServer(options, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        d.logger.error({ err }, 'request handler failed');
        if (!res.headersSent) sendError(res, 'BAD_GATEWAY', { upstream: null });
      });
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.upgrade(req, socket, head).catch((err: unknown) => {
        d.logger.error({ err }, 'upgrade failed');
        socket.destroy();
      });
    });
    this.wsProxy.on('proxyReqWs', (proxyReq, req) => {
      const settle = this.wsSettle.get(req);
      if (!settle) return;
      proxyReq.once('upgrade', () => settle(101));
      proxyReq.once('response', (r: IncomingMessage) => settle(r.statusCode ?? 502));
    });
    this.wsProxy.on('error', (err, _req, target) => {
      d.logger.warn({ err: err.message }, 'websocket proxy error');
      if (target && 'destroy' in target) (target as Duplex).destroy();
    });
  }

  get pending(): number {
    return this.inFlight;
  }

  /**
   * The connection's canonical peer and whether the runtime trusts it, worked out once per connection
   * (and again after a reload), not per request: a trusted-proxy check (net.BlockList) costs microseconds.
   */
  private peerOf(req: IncomingMessage, rt: Runtime): PeerTrust {
    let p = this.peers.get(req.socket);
    if (p === undefined || p.resolver !== rt.clientIp) {
      const peer = canonicalIp(req.socket.remoteAddress ?? '');
      p = { resolver: rt.clientIp, peer, trusted: rt.clientIp.trusts(peer) };
      this.peers.set(req.socket, p);
    }
    return p;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rt = this.d.runtime();
    const started = performance.now();
    const normalized = normalizeTarget(req.url ?? '/');
    if (normalized === null) {
      this.d.metrics.countRequest('', '', sendError(res, 'BAD_REQUEST'));
      return;
    }
    const { matchPath, forwardPath } = normalized;
    const route = rt.match(req.method ?? 'GET', matchPath);
    if (!route) {
      this.d.metrics.countRequest('', '', sendError(res, 'NO_ROUTE'));
      return;
    }
    this.inFlight++;
    const finish = (status: number): void => {
      this.inFlight--;
      this.d.metrics.countRequest(route.name, route.upstream.name, status);
      route.duration.observe((performance.now() - started) / 1000);
    };

    // A declared body over max_body is refused before it can use up any of the client's quota;
    // a chunked body is measured while it streams (forward.ts).
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > route.maxBody) {
      res.shouldKeepAlive = false;
      return finish(sendError(res, 'PAYLOAD_TOO_LARGE', { max_body: route.maxBody }));
    }

    const { peer, trusted: trustedHop } = this.peerOf(req, rt);
    const clientIp = trustedHop ? rt.clientIp.resolve(peer, req.headers['x-forwarded-for']) : peer;
    const admission = route.limits ? await this.admit(rt, route, req, res, clientIp) : PASS;
    if (!admission.ok) return finish(admission.status);
    // The client may have left while the limiter decided: there is nothing to forward then, and
    // nothing the breaker should hear about (a half-read body would otherwise fail as a 502).
    if (req.socket.destroyed) return finish(CLIENT_CLOSED);

    const { breaker, target } = route.upstream;
    if (!breaker.canExecute()) {
      const open = circuitOpen(route);
      return finish(sendError(res, 'CIRCUIT_OPEN', open.body, { ...open.headers, ...admission.headers }));
    }

    const headers = upstreamHeaders(req, OWN_HEADERS);
    headers.push(
      'x-forwarded-for',
      forwardedFor(req, peer, trustedHop),
      'x-forwarded-proto',
      (trustedHop && first(req.headers['x-forwarded-proto'])) || 'http',
      'x-forwarded-host',
      (trustedHop && first(req.headers['x-forwarded-host'])) || req.headers.host || '',
      'x-request-id',
      first(req.headers['x-request-id']) || randomUUID(),
    );
    forward({
      req,
      res,
      target,
      path: forwardPath,
      headers,
      responseHeaders: admission.headers,
      maxBody: route.maxBody,
      done: (outcome: Outcome, status: number) => {
        if (outcome === 'success') breaker.recordSuccess(performance.now() - started);
        else if (outcome === 'failure') breaker.recordFailure();
        else breaker.release();
        finish(status);
      },
    });
  }

  /** Applies the route's limits; answers the client itself when the request may not pass. */
  private async admit(
    rt: Runtime,
    route: RouteRuntime,
    req: IncomingMessage,
    res: ServerResponse,
    clientIp: string,
  ): Promise<Admission> {
    const limits = route.limits!;
    const id = limits.keyOf(req, clientIp);
    let decision: Decision;
    try {
      decision = await limits.limiter.check(id);
    } catch (err) {
      if (!isStoreUnavailable(err)) throw err;
      if (!rt.storeDenies) return PASS;
      return {
        ok: false,
        status: sendError(res, 'STORE_UNAVAILABLE', undefined, { 'retry-after': '1' }),
      };
    }
    const headers = limitHeaders(limits.policyHeader, decision);
    if (decision.allowed) {
      this.d.metrics.countDecision(route.name, 'allowed');
      return { ok: true, headers };
    }
    const r = rejection(decision);
    this.d.logger.warn(
      {
        route: route.name,
        identifier: this.d.hashId(id),
        limit: r.limit,
        remaining: 0,
        window: r.window,
        retry_after: r.retryAfter,
        shadow: limits.shadow,
      },
      'rate limit exceeded',
    );
    if (limits.shadow) {
      this.d.metrics.countDecision(route.name, 'shadow_limited');
      return { ok: true, headers };
    }
    this.d.metrics.countDecision(route.name, 'limited');
    const body = errorBody('RATE_LIMITED', { limit: r.limit, window: r.window, retry_after: r.retryAfter });
    res.writeHead(statusOf('RATE_LIMITED'), {
      ...headers,
      'retry-after': String(r.retryAfter),
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
    return { ok: false, status: 429 };
  }

  /** WebSocket and other upgrades: same route, limits and breaker, then a raw tunnel. */
  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const rt = this.d.runtime();
    const target = normalizeTarget(req.url ?? '/');
    const route = target && rt.match(req.method ?? 'GET', target.matchPath);
    // The same answers as handle() gives (DESIGN §3), written on the raw socket.
    const refuse = (status: number, body: string, headers: Record<string, string> = {}): void => {
      let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
      for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
      socket.end(
        head +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    if (!target) return refuse(400, errorBody('BAD_REQUEST'));
    if (!route) return refuse(404, errorBody('NO_ROUTE'));
    const peer = canonicalIp(req.socket.remoteAddress ?? '');
    const trustedHop = rt.clientIp.trusts(peer);
    const clientIp = trustedHop ? rt.clientIp.resolve(peer, req.headers['x-forwarded-for']) : peer;
    if (route.limits) {
      try {
        const decision = await route.limits.limiter.check(route.limits.keyOf(req, clientIp));
        if (!decision.allowed && !route.limits.shadow) {
          const r = rejection(decision);
          return refuse(
            429,
            errorBody('RATE_LIMITED', { limit: r.limit, window: r.window, retry_after: r.retryAfter }),
            { ...limitHeaders(route.limits.policyHeader, decision), 'retry-after': String(r.retryAfter) },
          );
        }
      } catch (err) {
        if (!isStoreUnavailable(err)) throw err;
        if (rt.storeDenies) return refuse(503, errorBody('STORE_UNAVAILABLE'), { 'retry-after': '1' });
      }
    }
    const { breaker } = route.upstream;
    if (!breaker.canExecute()) {
      const open = circuitOpen(route);
      return refuse(503, errorBody('CIRCUIT_OPEN', open.body), open.headers);
    }
    req.url = target.forwardPath;
    // The call counts once: the upstream's answer to the upgrade decides; a client that
    // leaves before it does releases the probe slot without counting.
    let settled = false;
    const settle = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      if (outcome === 'success') breaker.recordSuccess();
      else if (outcome === 'failure') breaker.recordFailure();
      else breaker.release();
    };
    this.wsSettle.set(req, (status) =>
      settle(route.upstream.target.failureStatuses.has(status) ? 'failure' : 'success'),
    );
    socket.once('close', () => settle('aborted'));
    this.wsProxy.ws(req, socket, head, { target: route.upstream.url, xfwd: true }, () => settle('failure'));
  }
}

/** The 503 of a breaker that refused a call: OPEN with the time it has left, or HALF_OPEN and full. */
function circuitOpen(route: RouteRuntime): {
  body: Record<string, unknown>;
  headers: Record<string, string>;
} {
  const { breaker, name } = route.upstream;
  const retryAfter = Math.max(1, Math.ceil(breaker.retryAfterMs() / 1000));
  return {
    body: { upstream: name, state: breaker.state, retry_after: retryAfter },
    headers: { 'retry-after': String(retryAfter), 'cache-control': 'no-store' },
  };
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** From a trusted hop we extend its chain; from anyone else we start a new one. */
function forwardedFor(req: IncomingMessage, peer: string, trustedHop: boolean): string {
  const prior = req.headers['x-forwarded-for'];
  if (!trustedHop || !prior) return peer;
  return (Array.isArray(prior) ? prior.join(', ') : prior) + ', ' + peer;
}
