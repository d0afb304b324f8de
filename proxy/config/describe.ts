// The text of `floodgate validate` (a short summary of a valid policy) and `floodgate explain` (what the
// proxy would do with one request). Pure functions of the policy, so tests compare exact strings.
import { redactUrl } from '../../core/redact-url.js';
import { canonicalHost } from '../http/host.js';
import { normalizeTarget } from '../http/normalize-path.js';
import { parseCost } from '../http/request-cost.js';
import { compileRoutes, mismatch, type RouteRequest } from '../http/router.js';
import {
  formatDuration,
  formatSize,
  type Policy,
  type Route,
  type RouteLimits,
  type Upstream,
} from './schema.js';

/** Summary for `floodgate validate`: one line per route and per upstream. */
export function summarizePolicy(file: string, policy: Policy): string {
  const routes = policy.routes;
  const upstreams = Object.values(policy.upstreams);
  const s = policy.store;
  // The memory store's cap matters wherever one is used: as the store, or as on_error: local's fallback.
  const cap = `max_keys ${s.maxKeys}`;
  const store =
    s.type === 'redis'
      ? `redis${s.cluster ? ' cluster' : ''} ${redactUrl(s.url)} (on_error ${s.onError}${s.onError === 'local' ? `, ${cap}` : ''})`
      : `memory (${cap})`;
  const lines = [
    `${file}: ok, ${plural(routes.length, 'route')}, ${plural(upstreams.length, 'upstream')}`,
    `  listen ${address(policy.listen)}${policy.workers === 1 ? '' : ` (workers ${policy.workers})`}, admin ${address(policy.admin.listen)}, store ${store}`,
    '  routes:',
    ...table(
      routes.map((r) => [
        r.name,
        r.match.methods?.join(',') ?? '*',
        r.match.pattern + conditionsShort(r.match),
        `-> ${r.upstream}`,
        (r.limits ? limitsText(r.limits) : 'unlimited') +
          (r.maxBodyBytes === null ? '' : `, max_body ${formatSize(r.maxBodyBytes)}`),
      ]),
    ),
    '  upstreams:',
    ...table(upstreams.map((u) => [u.name, u.url, breakerShort(u)])),
  ];
  return lines.join('\n');
}

export interface ExplainRequest {
  readonly method: string;
  /** The request target as a client would send it; normalized here exactly as the proxy does. */
  readonly path: string;
  /** Header names are case-insensitive. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Text for `floodgate explain`: the route that matches, its limits and key, its upstream and breaker. */
export function explainRequest(policy: Policy, request: ExplainRequest): string {
  const method = request.method.toUpperCase();
  const target = normalizeTarget(request.path);
  if (target === null) {
    return `${method} ${request.path}\nrefused: an encoded slash or backslash in the path; the proxy answers 400 {"error":"Bad request"}`;
  }
  const { matchPath } = target;
  const shown = matchPath === request.path ? request.path : `${request.path} (matched as ${matchPath})`;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.headers ?? {})) headers[k.toLowerCase()] = v;
  // As the data plane does: an absolute-form target's authority stands in for Host.
  const routed: RouteRequest = {
    method,
    path: matchPath,
    host: target.authority ?? headers.host ?? '',
    headers,
  };
  const route = compileRoutes(policy.routes).match(method, matchPath, routed.host, headers);
  const index = route ? policy.routes.indexOf(route) : policy.routes.length;
  const passed = passedOver(policy, routed, index);
  if (!route)
    return [`${method} ${shown}`, ...passed, 'no route: the proxy answers 404 {"error":"No route"}'].join(
      '\n',
    );

  const methods = route.match.methods ? route.match.methods.join(', ') : 'any method';
  const lines = [
    `${method} ${shown}`,
    ...passed,
    `route: ${route.name} (routes[${index}]: ${route.match.pattern}, ${methods})`,
  ];
  const conditions = conditionsText(route.match, routed);
  if (conditions) lines.push(`matched: ${conditions}`);
  if (route.limits) {
    const l = route.limits;
    const windows = l.windows.map((w) => `${w.name} ${w.limit} per ${formatDuration(w.windowMs)}`).join(', ');
    lines.push(`limits: ${windows} (${l.algorithm})`);
    if (l.shadow) lines.push('shadow: yes, requests over the limit are counted and reported, never rejected');
    lines.push(`key: ${keyText(l, request.headers ?? {})}`);
    const cost = costText(l, request.headers ?? {});
    if (cost !== null) lines.push(`cost: ${cost}`);
    lines.push(...answerText(l));
  } else {
    lines.push('limits: none, forwarded unlimited');
  }
  lines.push(`max_body: ${route.maxBodyBytes === null ? 'unlimited' : formatSize(route.maxBodyBytes)}`);
  const upstream = policy.upstreams[route.upstream];
  if (upstream) lines.push(...upstreamText(upstream));
  return lines.join('\n');
}

/**
 * The routes before `end` whose path and method take the request but whose host or a header does not:
 * why the request went past them.
 */
function passedOver(policy: Policy, request: RouteRequest, end: number): string[] {
  const lines: string[] = [];
  policy.routes.slice(0, end).forEach((r, i) => {
    const why = mismatch(r.match, request);
    if (why === null || why === 'path' || why === 'method') return;
    let reason: string;
    if (why === 'host') {
      const wanted = r.match.host!.join(' or ');
      reason =
        request.host === ''
          ? `no Host (wants ${wanted})`
          : `Host ${JSON.stringify(request.host)} is not ${wanted}`;
    } else {
      const sent = request.headers[why];
      const wanted = r.match.headers!.find((h) => h.name === why)!.values.join(' or ');
      reason =
        sent === undefined
          ? `no ${why} header (wants ${wanted})`
          : `${why} ${JSON.stringify(sent)} is not ${wanted}`;
    }
    lines.push(`passed over: ${r.name} (routes[${i}]: ${r.match.pattern}): ${reason}`);
  });
  return lines;
}

/** The host and header conditions a matched route compared, with what the request sent. */
function conditionsText(match: Route['match'], request: RouteRequest): string {
  const parts: string[] = [];
  if (match.host) {
    const host = canonicalHost(request.host);
    const sent = host === request.host ? '' : ` (Host ${JSON.stringify(request.host)})`;
    parts.push(`host ${host}${sent} matches ${match.host.join(' or ')}`);
  }
  for (const h of match.headers ?? []) parts.push(`header ${h.name}: ${request.headers[h.name]}`);
  return parts.join('; ');
}

/** How a refused request is answered, and which rate limit headers answers carry, when not the default. */
function answerText(l: RouteLimits): string[] {
  const lines: string[] = [];
  const r = l.rejection;
  const custom = r.status !== 429 || r.body !== null || Object.keys(r.headers).length > 0;
  if (custom) {
    const body = r.body === null ? 'the default body' : `body ${JSON.stringify(r.body)}`;
    const headers = Object.entries(r.headers).map(([n, v]) => `${n}: ${v}`);
    lines.push(
      `rejection: ${r.status}, ${body}${headers.length > 0 ? `, headers ${headers.join(', ')}` : ''}`,
    );
  }
  if (l.clientHeaders !== 'both') lines.push(`client headers: ${CLIENT_HEADERS[l.clientHeaders]}`);
  return lines;
}

const CLIENT_HEADERS: Record<RouteLimits['clientHeaders'], string> = {
  both: 'RateLimit-Policy, RateLimit and X-RateLimit-*',
  ietf: 'ietf (RateLimit-Policy, RateLimit)',
  legacy: 'legacy (X-RateLimit-Limit, -Remaining, -Reset)',
  none: 'none (only Retry-After, on a rejection)',
};

/** 'Name: value' (curl's -H form) → [name, value]; undefined when there is no colon or no name. */
export function parseHeaderArg(arg: string): [name: string, value: string] | undefined {
  const colon = arg.indexOf(':');
  if (colon <= 0) return undefined;
  const name = arg.slice(0, colon).trim();
  return name ? [name, arg.slice(colon + 1).trim()] : undefined;
}

function keyText(limits: RouteLimits, headers: Readonly<Record<string, string>>): string {
  if (limits.key.type === 'ip') return 'client ip';
  const name = limits.key.name;
  const value = Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1];
  // The data plane counts a request without the header (or with it empty) by client IP.
  return value ? `header ${name} = ${value}` : `header ${name} (not sent, so counted by client ip)`;
}

/** What the request counts; null for the default, 1 (nothing worth a line). */
function costText(limits: RouteLimits, headers: Readonly<Record<string, string>>): string | null {
  const c = limits.cost;
  if (c.type === 'fixed') return c.units === 1 ? null : `${c.units} units per request`;
  const others = `${c.default}, the default, from anyone else (a client's own header is ignored)`;
  const value = Object.entries(headers).find(([k]) => k.toLowerCase() === c.name)?.[1];
  if (value === undefined) return `header ${c.name} (not sent, so ${c.default}, the default)`;
  const n = parseCost(value, c.max);
  return n === 0
    ? `header ${c.name} = ${JSON.stringify(value)} is not a whole number from 1 to ${c.max}: refused with 400 from a trusted proxy; ${others}`
    : `header ${c.name} = ${n} from a trusted proxy (client_ip.trusted_proxies); ${others}`;
}

function upstreamText(u: Upstream): string[] {
  const b = u.breaker;
  const t = u.timeouts;
  const statuses = b.failureStatuses.length > 0 ? ` and statuses ${b.failureStatuses.join(', ')}` : '';
  const lines = [
    `upstream: ${u.name} ${u.url}`,
    `  timeouts: connect ${formatDuration(t.connectMs)}, response ${formatDuration(t.responseMs)}, idle ${formatDuration(t.idleMs)}`,
    `  breaker: opens after ${b.failureThreshold} consecutive failures (connect errors, timeouts${statuses})`,
  ];
  if (b.failureRate) {
    const r = b.failureRate;
    lines.push(
      `  breaker: also opens when ${Math.round(r.threshold * 100)}% of calls fail over ${formatDuration(r.windowMs)} (from ${r.minimumCalls} calls)`,
    );
  }
  lines.push(
    `  breaker: stays open ${formatDuration(b.timeoutMs)}, then admits ${b.halfOpenMaxCalls} probes at once; ${b.successThreshold} successes close it`,
  );
  return lines;
}

function limitsText(l: RouteLimits): string {
  const key = l.key.type === 'ip' ? 'ip' : `header ${l.key.name}`;
  const windows = l.windows.map((w) => `${w.name} ${w.limit}/${formatDuration(w.windowMs)}`).join(', ');
  const cost =
    l.cost.type === 'header'
      ? `cost from ${l.cost.name}: 1 to ${l.cost.max}, default ${l.cost.default}`
      : l.cost.units === 1
        ? ''
        : `cost ${l.cost.units}`;
  const notes = [
    l.algorithm === 'sliding-log' ? '' : l.algorithm,
    l.shadow ? 'shadow' : '',
    cost,
    l.rejection.status === 429 ? '' : `rejects ${l.rejection.status}`,
    l.clientHeaders === 'both' ? '' : `client headers ${l.clientHeaders}`,
  ].filter(Boolean);
  return `per ${key}: ${windows}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
}

/** ' host api.example.com, x-tenant=acme' for a route with conditions; '' without. */
function conditionsShort(match: Route['match']): string {
  const parts = [
    ...(match.host ? [`host ${match.host.join('|')}`] : []),
    ...(match.headers ?? []).map((h) => `${h.name}=${h.values.join('|')}`),
  ];
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

function breakerShort(u: Upstream): string {
  const b = u.breaker;
  return `breaker ${b.failureThreshold} failures -> open ${formatDuration(b.timeoutMs)}${b.failureRate ? ', or by rate' : ''}`;
}

/** Rows as left-aligned columns; the last column is not padded. */
function table(rows: readonly string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    for (let i = 0; i < row.length; i++) widths[i] = Math.max(widths[i] ?? 0, row[i]!.length);
  }
  return rows.map(
    (row) => `    ${row.map((cell, i) => (i < row.length - 1 ? cell.padEnd(widths[i]!) : cell)).join('  ')}`,
  );
}

function address(a: Policy['listen']): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
