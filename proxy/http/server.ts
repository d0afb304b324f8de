// The data plane: route → headers → limits → breaker → forward, in that order, for every request.
// One admission path decides; two writers carry its answer out: an HTTP response for plain
// requests, the raw socket for upgrades (WebSocket). So an upgrade gets exactly the routing, limits,
// metrics, logs and header rewriting a plain request gets.
// The runtime is read once at the start of a request, so a reload swaps policies between
// requests and an in-flight request finishes under the policy it started with.
import { randomUUID } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import { tmpdir } from 'node:os';
import type { Duplex, Readable } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.js';
import type { ProxyMetrics } from '../observability/metrics.js';
import { RejectionLog } from '../observability/rejection-log.js';
import { isStoreUnavailable } from '../ratelimit/guarded-store.js';
import { rejection } from '../ratelimit/headers.js';
import type { Decision } from '../ratelimit/store.js';
import { canonicalIp } from './client-ip.js';
import type { ClientSettings } from './client-settings.js';
import { errorBody, type ProxyErrorCode, statusOf } from './errors.js';
import { forward, type Outcome, sendAnswer, sendError } from './forward.js';
import { ipIdentity } from './identity.js';
import { type NormalizedTarget, normalizeTarget } from './normalize-path.js';
import { readBody } from './request-body.js';
import { checkRequestHeaders, duplicateHeader } from './request-headers.js';
import type { PlanRuntime, RouteRuntime, Runtime } from './runtime.js';

/** What metrics record for a request whose client went away before it was answered (nginx's 499). */
const CLIENT_CLOSED = 499;

/** Refusals after which the connection is closed, as nginx does. */
const CLOSES: ReadonlySet<ProxyErrorCode> = new Set(['bad_request', 'headers_too_large', 'request_timeout']);

/** Longest a refused client may go on sending its body before the connection is cut. */
const LINGER_MS = 5_000;

/** Body bytes kept in memory before the rest goes to a temporary file. */
const BODY_MEMORY_BYTES = 64 * 1024;

/** A client's own X-Request-Id is passed on only when it looks like one. */
const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

export interface DataPlaneDeps {
  readonly runtime: () => Runtime;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Hashes an identity for logs: raw IPs and API keys never reach a log line. */
  readonly hashId: (id: string) => string;
  readonly client: ClientSettings;
}

/** The admission's answer: refuse with an error, or pass with what the upstream is to receive. */
type Verdict =
  | {
      readonly pass: false;
      readonly route: RouteRuntime | null;
      readonly code: ProxyErrorCode;
      readonly extra?: Record<string, unknown>;
      readonly headers?: OutgoingHttpHeaders;
      /** A status and body of the policy's making (a route's rejection), in place of the code's. */
      readonly answer?: Answer;
    }
  | {
      readonly pass: true;
      readonly route: RouteRuntime;
      readonly path: string;
      /** Upstream request headers, flat [name, value, …]. */
      readonly headers: string[];
      /** Rate limit headers for the client's response, or null. */
      readonly limitHeaders: Record<string, string> | null;
    };

interface Answer {
  readonly status: number;
  readonly body: string;
}

interface PeerTrust {
  readonly resolver: Runtime['clientIp'];
  readonly prefix: number;
  readonly peer: string;
  readonly trusted: boolean;
  /** The peer's rate-limit identity, for untrusted peers (trusted ones speak for someone else). */
  readonly ipKey: string;
}

export class DataPlane {
  readonly server: Server;
  private readonly wsProxy = httpProxy.createProxyServer({ ws: true, xfwd: false });
  private readonly wsSettle = new WeakMap<IncomingMessage, (status: number) => void>();
  private readonly tunnels = new Set<Duplex>();
  private inFlight = 0;
  private readonly peers = new WeakMap<object, PeerTrust>();
  private readonly rejections: RejectionLog;
  private readonly tempDir = tmpdir();

  constructor(private readonly d: DataPlaneDeps) {
    const headersTimeout = d.client.headersTimeoutMs;
    const options = {
      requestTimeout: 0,
      headersTimeout,
      // Node looks for expired headers only this often (30 s by default), so a slowloris connection
      // would otherwise live up to headersTimeout + 30 s.
      connectionsCheckingInterval: Math.min(1_000, headersTimeout),
    };
    this.rejections = new RejectionLog({ logger: d.logger, clock: d.clock, hashId: d.hashId });
    const failed = (res: ServerResponse, err: unknown): void => {
      d.logger.error({ err }, 'request handler failed');
      if (!res.headersSent) sendError(res, 'bad_gateway', { upstream: null });
    };
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      try {
        // A promise only when the request waits for something (its limits, its body).
        this.handle(req, res)?.catch((err: unknown) => failed(res, err));
      } catch (err) {
        failed(res, err);
      }
    };
    this.server = createServer(options, onRequest);
    // Expect: 100-continue is answered by handle() once the request is admitted, not by Node at
    // once: a client refused (429, 503, 413) is told so before it sends its body.
    this.server.on('checkContinue', onRequest);
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

  /** Cuts every open WebSocket tunnel: they are not requests a drain could wait out. */
  closeTunnels(): void {
    for (const socket of this.tunnels) socket.destroy();
  }

  /**
   * The connection's canonical peer and whether the runtime trusts it, worked out once per connection
   * (and again after a reload), not per request: a trusted-proxy check (net.BlockList) costs microseconds.
   */
  private peerOf(req: IncomingMessage, rt: Runtime): PeerTrust {
    let p = this.peers.get(req.socket);
    if (p === undefined || p.resolver !== rt.clientIp || p.prefix !== rt.ipv6Prefix) {
      const peer = canonicalIp(req.socket.remoteAddress ?? '');
      p = {
        resolver: rt.clientIp,
        prefix: rt.ipv6Prefix,
        peer,
        trusted: rt.clientIp.trusts(peer),
        ipKey: ipIdentity(peer, rt.ipv6Prefix),
      };
      this.peers.set(req.socket, p);
    }
    return p;
  }

  /**
   * The one admission path: everything short of the breaker's slot and the body. Synchronous for a
   * route without limits: nothing there waits, so no promise is made for it.
   */
  private admit(req: IncomingMessage, rt: Runtime): Verdict | Promise<Verdict> {
    const target = normalizeTarget(req.url ?? '/');
    if (target === null)
      return { pass: false, route: null, code: 'bad_request', extra: { detail: 'request target' } };
    // Which route a request takes must not depend on which copy of a compared header is read.
    if (rt.conditionHeaders !== null) {
      const dup = duplicateHeader(req, rt.conditionHeaders);
      if (dup !== null) return { pass: false, route: null, code: dup.code, extra: { detail: dup.detail } };
    }
    // The host compared is the one the upstream will receive: an absolute-form target's authority
    // replaces Host.
    const route = rt.match(
      req.method ?? 'GET',
      target.matchPath,
      target.authority ?? req.headers.host ?? '',
      req.headers,
    );
    if (!route) return { pass: false, route: null, code: 'no_route' };

    // A declared body over max_body is refused before it can use up any of the client's quota.
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > route.maxBody) {
      return { pass: false, route, code: 'payload_too_large', extra: { max_body: route.maxBody } };
    }
    const checked = checkRequestHeaders(req, route.singletons, target.authority !== null, this.d.client);
    if (!checked.ok) return { pass: false, route, code: checked.code, extra: { detail: checked.detail } };

    const peer = this.peerOf(req, rt);
    const clientIp = peer.trusted
      ? rt.clientIp.resolve(peer.peer, req.headers['x-forwarded-for'])
      : peer.peer;
    const limits = route.limits;
    if (limits === null) return this.admitted(req, route, target, checked.headers, peer, clientIp, null);
    const id = limits.keyOf(req, peer.trusted ? ipIdentity(clientIp, rt.ipv6Prefix) : peer.ipKey, target);
    // A key that cannot be read without ambiguity (a repeated query parameter) costs no quota.
    if (typeof id !== 'string')
      return { pass: false, route, code: 'bad_request', extra: { detail: id.refused } };
    // Allowlisted: forwarded uncounted, and without rate-limit headers (there is no limit to report).
    if (limits.allowIp?.(clientIp) || limits.allowIds?.has(id)) {
      this.d.metrics.countDecision(route.name, 'allowlisted');
      return this.admitted(req, route, target, checked.headers, peer, clientIp, null);
    }
    // A cost header a trusted proxy got wrong is refused before it counts anything.
    const cost = limits.cost.of(req, peer.trusted);
    if (cost === 0)
      return { pass: false, route, code: 'bad_request', extra: { detail: limits.cost.invalid } };
    const plan = limits.planOf === null ? limits.plan : limits.planOf(req, id, peer.trusted);
    return this.limit(rt, route, plan, id, cost).then((limited) =>
      limited.pass === false
        ? limited
        : this.admitted(req, route, target, checked.headers, peer, clientIp, limited.headers),
    );
  }

  /** The rest of admission once the limits have let the request pass: the breaker, then the headers. */
  private admitted(
    req: IncomingMessage,
    route: RouteRuntime,
    target: NormalizedTarget,
    out: string[],
    { peer, trusted }: PeerTrust,
    clientIp: string,
    headers: Record<string, string> | null,
  ): Verdict {
    // An open circuit answers at once, before a body is read for nothing. The slot itself is taken
    // only when the request is ready to go (canExecute in the writers).
    if (route.upstream.breaker.retryAfterMs() > 0) return circuitOpen(route, headers);

    const xff = req.headers['x-forwarded-for'];
    out.push(
      'x-forwarded-for',
      trusted && xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${peer}` : peer,
      'x-forwarded-proto',
      (trusted && first(req.headers['x-forwarded-proto'])) || 'http',
      'x-forwarded-host',
      (trusted && first(req.headers['x-forwarded-host'])) || target.authority || req.headers.host || '',
      'x-real-ip',
      clientIp,
      'x-request-id',
      requestId(req.headers['x-request-id']),
    );
    if (target.authority !== null) out.push('host', target.authority);
    const forwarded = req.headers.forwarded;
    if (trusted && forwarded) out.push('forwarded', `${forwarded}, for=${forwardedNode(peer)}`);
    return { pass: true, route, path: target.forwardPath, headers: out, limitHeaders: headers };
  }

  /** Counts `id` against its plan's windows: the headers to add when the request may pass, or the refusal. */
  private async limit(
    rt: Runtime,
    route: RouteRuntime,
    plan: PlanRuntime,
    id: string,
    cost: number,
  ): Promise<{ pass: true; headers: Record<string, string> | null } | (Verdict & { pass: false })> {
    const limits = route.limits!;
    let decision: Decision;
    try {
      decision = await plan.limiter.check(id, cost);
    } catch (err) {
      if (!isStoreUnavailable(err)) throw err;
      if (!rt.storeDenies) return { pass: true, headers: null };
      return { pass: false, route, code: 'store_unavailable', headers: { 'retry-after': '1' } };
    }
    const headers = plan.headersOf === null ? null : plan.headersOf(decision);
    if (decision.allowed) {
      this.d.metrics.countDecision(route.name, 'allowed');
      return { pass: true, headers };
    }
    const r = rejection(decision);
    this.rejections.record({
      route: route.name,
      identity: id,
      window: r.window,
      limit: r.limit,
      retryAfter: r.retryAfter,
      shadow: limits.shadow,
    });
    if (limits.shadow) {
      this.d.metrics.countDecision(route.name, 'shadow_limited');
      return { pass: true, headers };
    }
    this.d.metrics.countDecision(route.name, 'limited');
    // Retry-After is always sent: the one thing a refused client must know, whatever else is hidden.
    const answer = limits.rejection;
    return {
      pass: false,
      route,
      code: 'rate_limited',
      answer: { status: answer.status, body: answer.body(r) },
      headers: { ...headers, ...answer.headers(r), 'retry-after': String(r.retryAfter) },
    };
  }

  private record(route: RouteRuntime | null, status: number, started: number): void {
    this.d.metrics.countRequest(route?.name ?? '', route?.upstream.name ?? '', status);
    route?.duration.observe((performance.now() - started) / 1000);
  }

  /** The HTTP writer. A promise only when the request waits for something (its limits, its body). */
  private handle(req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
    const started = performance.now();
    this.inFlight++;
    let v: Verdict | Promise<Verdict>;
    try {
      v = this.admit(req, this.d.runtime());
    } catch (err) {
      this.inFlight--;
      throw err;
    }
    if (!(v instanceof Promise)) return this.proceed(req, res, v, started);
    return v.then(
      (verdict) => this.proceed(req, res, verdict, started),
      (err: unknown) => {
        this.inFlight--;
        throw err;
      },
    );
  }

  private proceed(
    req: IncomingMessage,
    res: ServerResponse,
    v: Verdict,
    started: number,
  ): Promise<void> | undefined {
    if (!v.pass) {
      this.refuse(req, res, v.route, started, v.code, v.extra, v.headers, v.answer);
      return undefined;
    }
    if (hasBody(req)) return this.withBody(req, res, v, started);
    this.dispatch(req, res, v, null, started);
    return undefined;
  }

  private finish(route: RouteRuntime | null, status: number, started: number): void {
    this.inFlight--;
    this.record(route, status, started);
  }

  private refuse(
    req: IncomingMessage,
    res: ServerResponse,
    route: RouteRuntime | null,
    started: number,
    code: ProxyErrorCode,
    extra?: Record<string, unknown>,
    headers?: OutgoingHttpHeaders,
    answer?: Answer,
  ): void {
    // A client still sending a body we refuse must be able to read the answer: closing at once
    // would meet its next bytes with a reset, which can destroy the answer before it is read.
    if (hasBody(req) && !req.complete && code !== 'request_timeout') linger(req, res);
    else if (CLOSES.has(code) || hasBody(req)) res.shouldKeepAlive = false;
    const status = answer
      ? sendAnswer(res, answer.status, answer.body, headers)
      : sendError(res, code, extra, headers);
    this.finish(route, status, started);
  }

  /** Reads an admitted request's body, then sends it on. */
  private async withBody(
    req: IncomingMessage,
    res: ServerResponse,
    v: Verdict & { pass: true },
    started: number,
  ): Promise<void> {
    if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
    const read = await readBody(req, {
      maxBody: v.route.maxBody,
      idleTimeoutMs: this.d.client.bodyTimeoutMs,
      memoryBytes: BODY_MEMORY_BYTES,
      tempDir: this.tempDir,
    });
    if (!read.ok) {
      if (read.reason === 'too-large')
        return this.refuse(req, res, v.route, started, 'payload_too_large', { max_body: v.route.maxBody });
      if (read.reason === 'timeout') return this.refuse(req, res, v.route, started, 'request_timeout');
      return this.finish(v.route, CLIENT_CLOSED, started);
    }
    // A chunked body is sent on with its length, now known.
    if (req.headers['content-length'] === undefined) v.headers.push('content-length', String(read.length));
    this.dispatch(req, res, v, read.body, started);
  }

  /** Takes the breaker's slot and forwards; the last step of an admitted request. */
  private dispatch(
    req: IncomingMessage,
    res: ServerResponse,
    v: Verdict & { pass: true },
    body: Buffer | Readable | null,
    started: number,
  ): void {
    const { route } = v;
    // The client may have left while the limiter decided or the body arrived: there is nothing to
    // forward then, and nothing the breaker should hear about.
    if (req.socket.destroyed) {
      if (body !== null && !Buffer.isBuffer(body)) body.destroy();
      this.finish(route, CLIENT_CLOSED, started);
      return;
    }

    // A cluster worker asks its primary for a HALF_OPEN probe slot: only then is admission a promise.
    const admitted = route.upstream.breaker.admit();
    if (admitted === null || typeof admitted === 'number') {
      this.send(req, res, v, body, started, admitted);
      return;
    }
    void admitted.then((ticket) => {
      if (ticket !== null && req.socket.destroyed) {
        // Gone while the primary decided: the slot goes back unused.
        route.upstream.breaker.end(ticket, 'release');
        if (body !== null && !Buffer.isBuffer(body)) body.destroy();
        this.finish(route, CLIENT_CLOSED, started);
        return;
      }
      this.send(req, res, v, body, started, ticket);
    });
  }

  /** Forwards with the breaker's ticket, or answers that the circuit refused (`ticket` null). */
  private send(
    req: IncomingMessage,
    res: ServerResponse,
    v: Verdict & { pass: true },
    body: Buffer | Readable | null,
    started: number,
    ticket: number | null,
  ): void {
    const { route } = v;
    const { breaker, target } = route.upstream;
    if (ticket === null) {
      if (body !== null && !Buffer.isBuffer(body)) body.destroy();
      const open = circuitOpen(route, v.limitHeaders);
      this.refuse(req, res, route, started, open.code, open.extra, open.headers);
      return;
    }
    forward({
      req,
      res,
      target,
      path: v.path,
      headers: v.headers,
      body,
      responseHeaders: v.limitHeaders,
      sendTimeoutMs: this.d.client.sendTimeoutMs,
      done: (outcome: Outcome, status: number) => {
        breaker.end(ticket, outcome, performance.now() - started);
        if (body !== null && !Buffer.isBuffer(body)) body.destroy();
        this.finish(route, status, started);
      },
    });
  }

  /** The upgrade writer: the same admission, then a raw tunnel. */
  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const started = performance.now();
    const v = await this.admit(req, this.d.runtime());
    const refuse = (
      code: ProxyErrorCode,
      extra?: Record<string, unknown>,
      headers?: OutgoingHttpHeaders,
      answer?: Answer,
    ): void => {
      const status = answer?.status ?? statusOf(code);
      const body = answer?.body ?? errorBody(code, extra);
      let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
      for (const name in headers) text += `${name}: ${headers[name]}\r\n`;
      socket.end(
        text +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      this.record(v.route, status, started);
    };
    if (!v.pass) return refuse(v.code, v.extra, v.headers, v.answer);
    const { route } = v;
    const { breaker } = route.upstream;
    const admitted = breaker.admit();
    const ticket = typeof admitted === 'object' && admitted !== null ? await admitted : admitted;
    if (ticket === null) {
      const open = circuitOpen(route, v.limitHeaders);
      return refuse(open.code, open.extra, open.headers);
    }
    // http-proxy sends req.headers on: replace them with the checked ones, plus the two that make
    // the request an upgrade.
    const headers: Record<string, string> = {
      connection: 'upgrade',
      upgrade: first(req.headers.upgrade) ?? '',
    };
    for (let i = 0; i < v.headers.length; i += 2) {
      const name = v.headers[i]!.toLowerCase();
      const prior = headers[name];
      headers[name] =
        prior === undefined
          ? v.headers[i + 1]!
          : `${prior}${name === 'cookie' ? '; ' : ', '}${v.headers[i + 1]}`;
    }
    req.headers = headers;
    req.url = v.path;
    // The call counts once: the upstream's answer to the upgrade decides; a client that
    // leaves before it does releases the probe slot without counting.
    let settled = false;
    const settle = (outcome: Outcome, status: number): void => {
      if (settled) return;
      settled = true;
      breaker.end(ticket, outcome);
      this.record(route, status, started);
    };
    this.wsSettle.set(req, (status) =>
      settle(route.upstream.target.failureStatuses.has(status) ? 'failure' : 'success', status),
    );
    this.tunnels.add(socket);
    socket.once('close', () => {
      this.tunnels.delete(socket);
      settle('release', CLIENT_CLOSED);
    });
    this.wsProxy.ws(req, socket, head, { target: route.upstream.url, xfwd: false }, () =>
      settle('failure', 502),
    );
  }
}

/** The 503 of a breaker that refused a call: OPEN with the time it has left, or HALF_OPEN and full. */
function circuitOpen(
  route: RouteRuntime,
  limitHeaders: Record<string, string> | null,
): Verdict & { pass: false } {
  const { breaker, name } = route.upstream;
  const retryAfter = Math.max(1, Math.ceil(breaker.retryAfterMs() / 1000));
  return {
    pass: false,
    route,
    code: 'circuit_open',
    extra: { upstream: name, state: breaker.state, retry_after: retryAfter },
    headers: { ...limitHeaders, 'retry-after': String(retryAfter), 'cache-control': 'no-store' },
  };
}

/**
 * Lingering close, as nginx does it: once the refusal is sent, read and drop the rest of the body for
 * up to LINGER_MS, then cut the connection if the client is still sending.
 */
function linger(req: IncomingMessage, res: ServerResponse): void {
  res.once('finish', () => {
    if (req.complete) return;
    const cut = setTimeout(() => req.socket.destroy(), LINGER_MS);
    req.once('end', () => clearTimeout(cut));
    req.socket.once('close', () => clearTimeout(cut));
    req.resume();
  });
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function requestId(given: string | string[] | undefined): string {
  const id = first(given);
  return id !== undefined && REQUEST_ID.test(id) ? id : randomUUID();
}

/** A node for the Forwarded header: IPv6 addresses are quoted and bracketed (RFC 7239 §6). */
function forwardedNode(ip: string): string {
  return ip.includes(':') ? `"[${ip}]"` : ip;
}
