// The admin listener of DESIGN §4. It only speaks HTTP: what it reports and does comes from
// the AdminApi it is given, so the routes stay thin and the proxy's internals stay private.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { adminAuthorized } from './admin-auth.js';

export type ReloadResult = { ok: true; version: number } | { ok: false; errors: string[] };

export interface LimitsView {
  route: string;
  key: string;
  windows: { name: string; limit: number; remaining: number; reset_at: number; retry_after: number }[];
}

export interface AdminApi {
  /** The bearer token /admin/* requires, or null when none is set. */
  token(): string | null;
  breakers(): Record<string, unknown>;
  resetBreaker(name: string): boolean;
  /** null when the route is unknown; a view with no windows when the route has no limits. */
  limits(route: string, key: string): Promise<LimitsView | null>;
  config(): { version: number; loaded_at: string; policy: unknown };
  reload(): Promise<ReloadResult>;
  readiness(): { ready: boolean; store: 'ok' | 'degraded' };
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Serves GET / (the dashboard); absent until there is one. */
  dashboard?(req: IncomingMessage, res: ServerResponse): void;
  /** Serves GET /admin/events, the dashboard's live feed (server-sent events), once authorized. */
  events?(req: IncomingMessage, res: ServerResponse): void;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

async function route(api: AdminApi, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const path = url.pathname;
  const method = req.method ?? 'GET';

  if (method === 'GET' && path === '/healthz') return json(res, 200, { status: 'ok' });
  if (method === 'GET' && path === '/readyz') {
    const r = api.readiness();
    return json(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not_ready', store: r.store });
  }
  if (method === 'GET' && path === '/metrics') {
    const m = await api.metrics();
    res.writeHead(200, { 'content-type': m.contentType });
    res.end(m.body);
    return;
  }
  if (method === 'GET' && path === '/' && api.dashboard) return api.dashboard(req, res);

  if (path.startsWith('/admin/')) {
    // The Bearer header, or the cookie the dashboard set (admin-auth.ts).
    if (!adminAuthorized(req, api.token())) {
      res.setHeader('www-authenticate', 'Bearer');
      return json(res, 401, { error: 'Unauthorized' });
    }
    if (method === 'GET' && path === '/admin/breakers') return json(res, 200, api.breakers());
    if (method === 'GET' && path === '/admin/events' && api.events) return api.events(req, res);
    const reset = /^\/admin\/breakers\/([^/]+)\/reset$/.exec(path);
    if (method === 'POST' && reset) {
      const name = decodeURIComponent(reset[1]!);
      return api.resetBreaker(name)
        ? json(res, 200, { ok: true, name, state: 'CLOSED' })
        : json(res, 404, { error: 'Unknown breaker', name });
    }
    if (method === 'GET' && path === '/admin/limits') {
      const routeName = url.searchParams.get('route');
      const key = url.searchParams.get('key');
      if (!routeName || key === null) return json(res, 400, { error: 'route and key are required' });
      const view = await api.limits(routeName, key);
      return view ? json(res, 200, view) : json(res, 404, { error: 'Unknown route', route: routeName });
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
  return createServer((req, res) => {
    route(api, req, res).catch((err: unknown) => {
      onError(err);
      if (!res.headersSent) json(res, 500, { error: 'Internal error' });
      else res.destroy();
    });
  });
}
