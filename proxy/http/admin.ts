// The admin listener: health, metrics, the admin API and the dashboard. It only speaks HTTP: what
// it reports and does comes from the AdminApi it is given, so the routes stay thin and the proxy's
// internals stay private. Who may call what, and from where, is admin-auth.ts's rule; this file
// applies it to every request before routing.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type Clock, systemClock } from '../../core/clock.js';
import { adminCredential, crossOrigin, hostAllowed } from './admin-auth.js';

export type ReloadResult = { ok: true; version: number } | { ok: false; errors: string[] };

export interface LimitsView {
  route: string;
  /** The value given for a single-part key; one per part, in order, for a composite key. */
  key: string | string[];
  /** The plan whose windows these are: its value as the policy lists it, or null for the default windows. */
  plan: string | null;
  windows: { name: string; limit: number; remaining: number; reset_at: number; retry_after: number }[];
}

/** /admin/limits' answer: the view, or why there is none (404: no such route; 400: a wrong query). */
export type LimitsAnswer =
  | { readonly ok: true; readonly view: LimitsView }
  | { readonly ok: false; readonly status: 400 | 404; readonly body: Record<string, unknown> };

export interface AdminApi {
  /** The bearer token /admin/* requires, or null when none is set. */
  token(): string | null;
  /** Ages dashboard sessions (default: the system clock). */
  clock?: Clock;
  breakers(): Record<string, unknown>;
  resetBreaker(name: string): boolean;
  /**
   * One identity's windows on a route, without counting: `keys` has one value per part of the route's
   * key, `plan` names a plan chosen by header (null: the default, or the key's own plan). A route
   * without limits answers a view with no windows.
   */
  limits(route: string, keys: readonly string[], plan: string | null): Promise<LimitsAnswer>;
  config(): { version: number; loaded_at: string; policy: unknown };
  reload(): Promise<ReloadResult>;
  readiness(): { ready: boolean; store: 'ok' | 'degraded' };
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Serves GET / (the dashboard); absent until there is one. */
  dashboard?(req: IncomingMessage, res: ServerResponse): void;
  /** Serves GET /admin/events, the dashboard's live feed (server-sent events), once authorized. */
  events?(req: IncomingMessage, res: ServerResponse): void;
}

/** An answer with a JSON body; every error the admin listener gives is one, `{"error": "…"}`. */
export function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** Probes and scrapes: read-only, secret-free, and open to whatever can reach the port. */
const PROBES = new Set(['/healthz', '/readyz', '/metrics']);

async function probe(api: AdminApi, path: string, res: ServerResponse): Promise<void> {
  // HEAD gets the same status and headers; Node leaves the body out by itself.
  if (path === '/healthz') return json(res, 200, { status: 'ok' });
  if (path === '/readyz') {
    const r = api.readiness();
    return json(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not_ready', store: r.store });
  }
  const m = await api.metrics();
  res.writeHead(200, { 'content-type': m.contentType, 'content-length': Buffer.byteLength(m.body) });
  res.end(m.body);
}

async function route(
  api: AdminApi,
  listenAddress: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  // A target no URL parser accepts (//[ for one) is the client's mistake: 400, not a 500.
  const url = URL.canParse(req.url ?? '/', 'http://admin') ? new URL(req.url ?? '/', 'http://admin') : null;
  if (!url) return json(res, 400, { error: 'Malformed request target' });
  const path = url.pathname;
  const method = req.method ?? 'GET';
  const safe = method === 'GET' || method === 'HEAD';

  // Probes skip the Host check: Kubernetes and Prometheus address a pod by IP, which passes anyway,
  // but a scraper may use a service name (floodgate:9090), and an HTTP/1.0 checker no Host at all;
  // what a rebound page could read here, anyone who reaches the port can read.
  if (safe && PROBES.has(path)) return probe(api, path, res);
  if (!hostAllowed(req.headers.host, listenAddress)) {
    return json(res, 421, {
      error: 'Misdirected request: the Host header does not name this admin listener',
    });
  }
  if (method === 'GET' && path === '/' && api.dashboard) return api.dashboard(req, res);

  if (path.startsWith('/admin/')) {
    const credential = adminCredential(req, api.token(), (api.clock ?? systemClock).now());
    if (!credential) {
      res.setHeader('www-authenticate', 'Bearer');
      return json(res, 401, { error: 'Unauthorized' });
    }
    if (!safe) {
      const refused = crossOrigin(req, credential);
      if (refused) return json(res, 403, { error: refused });
    }
    if (method === 'GET' && path === '/admin/breakers') return json(res, 200, api.breakers());
    if (method === 'GET' && path === '/admin/events' && api.events) return api.events(req, res);
    const reset = /^\/admin\/breakers\/([^/]+)\/reset$/.exec(path);
    if (method === 'POST' && reset) {
      let name: string;
      try {
        name = decodeURIComponent(reset[1]!);
      } catch {
        return json(res, 400, { error: 'Malformed breaker name' });
      }
      return api.resetBreaker(name)
        ? json(res, 200, { ok: true, name, state: 'CLOSED' })
        : json(res, 404, { error: 'Unknown breaker', name });
    }
    if (method === 'GET' && path === '/admin/limits') {
      const routeName = url.searchParams.get('route');
      // One key= per part of the route's key, in order; plan= at most once.
      const keys = url.searchParams.getAll('key');
      const plans = url.searchParams.getAll('plan');
      if (!routeName || keys.length === 0) return json(res, 400, { error: 'route and key are required' });
      if (plans.length > 1) return json(res, 400, { error: 'plan may be given once' });
      const r = await api.limits(routeName, keys, plans[0] ?? null);
      return r.ok ? json(res, 200, r.view) : json(res, r.status, r.body);
    }
    if (method === 'GET' && path === '/admin/config') return json(res, 200, api.config());
    if (method === 'POST' && path === '/admin/reload') {
      const r = await api.reload();
      return json(res, r.ok ? 200 : 400, r);
    }
  }
  json(res, 404, { error: 'Not found' });
}

export function createAdminServer(api: AdminApi, onError: (err: unknown) => void): Server {
  const server = createServer((req, res) => {
    // The address actually bound (a configured name is resolved by then) decides the Host rule.
    const bound = server.address();
    const listenAddress = typeof bound === 'object' && bound ? bound.address : '';
    route(api, listenAddress, req, res).catch((err: unknown) => {
      onError(err);
      if (!res.headersSent) json(res, 500, { error: 'Internal error' });
      else res.destroy();
    });
  });
  return server;
}
