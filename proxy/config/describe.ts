// The text of `floodgate validate` (a short summary of a valid policy) and `floodgate explain` (what the
// proxy would do with one request). Pure functions of the policy, so tests compare exact strings.
import { redactUrl } from '../../core/redact-url.js';
import { compileAddressList } from '../http/client-ip.js';
import { canonicalHost } from '../http/host.js';
import { countedIdentity, keyPartValues, type PartValue, singleIdentity } from '../http/limit-key.js';
import { type NormalizedTarget, normalizeTarget } from '../http/normalize-path.js';
import { parseCost } from '../http/request-cost.js';
import { compileRoutes, mismatch, type RouteRequest } from '../http/router.js';
import type { WindowSpec } from '../ratelimit/store.js';
import {
  formatDuration,
  formatSize,
  type KeyPart,
  keyPartText,
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
  /** The client's address as client_ip would resolve it; unknown when absent. */
  readonly clientIp?: string;
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
  if (route.limits) lines.push(...limitsExplained(policy, route.limits, request, target));
  else lines.push('limits: none, forwarded unlimited');
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

/** The limits one request gets: allowlisted, or its plan's windows; then how it is keyed. */
function limitsExplained(
  policy: Policy,
  l: RouteLimits,
  request: ExplainRequest,
  target: NormalizedTarget,
): string[] {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.headers ?? {})) headers[k.toLowerCase()] = v;
  const values = keyPartValues(l.key, headers, target, request.clientIp ?? null);
  const duplicate = l.key.findIndex((_p, i) => values[i]!.kind === 'duplicate');
  const key = `key: ${keyText(l.key, values)}`;
  if (duplicate >= 0) {
    const part = l.key[duplicate] as KeyPart & { name: string };
    return [
      key,
      `refused: more than one ${part.name} query parameter; the proxy answers 400 {"error":"Bad request"}`,
    ];
  }

  const single = l.key.length === 1 ? l.key[0]! : null;
  // The value a single-part key is counted by; null when it falls back to the ip or is the ip.
  const v0 = values[0]!;
  const singleValue =
    single !== null && single.type !== 'ip' && v0.kind === 'value' && v0.value !== '' ? v0.value : null;
  const allowed = allowlisted(policy, l, request.clientIp, singleValue);
  if (allowed !== null) {
    return [
      `limits: none for this request, allowlisted (${allowed}): forwarded uncounted, without rate-limit headers`,
      key,
    ];
  }

  const { windows, plan } = planOf(l, headers, singleValue);
  const lines = [`limits: ${windowsText(windows)} (${l.algorithm})`];
  if (plan !== null) lines.push(`plan: ${plan}`);
  if (l.shadow) lines.push('shadow: yes, requests over the limit are counted and reported, never rejected');
  lines.push(key);
  const cost = costText(l, request.headers ?? {});
  if (cost !== null) lines.push(`cost: ${cost}`);
  lines.push(...answerText(l));
  const ips = [...policy.allowlist.ips, ...(l.allowlist?.ips ?? [])];
  if (ips.length > 0 && request.clientIp === undefined) {
    lines.push(
      `allowlist: clients in ${ips.map((c) => c.cidr).join(', ')} are never limited (give --ip to check one)`,
    );
  }
  return lines;
}

/** Why the request is allowlisted, or null. */
function allowlisted(
  policy: Policy,
  l: RouteLimits,
  clientIp: string | undefined,
  singleValue: string | null,
): string | null {
  if (clientIp !== undefined) {
    const top = compileAddressList(policy.allowlist.ips.map((c) => c.cidr));
    if (top?.(clientIp)) return `client ip ${clientIp} is in the top-level allowlist`;
    const own = compileAddressList((l.allowlist?.ips ?? []).map((c) => c.cidr));
    if (own?.(clientIp)) return `client ip ${clientIp} is in this route's allowlist`;
  }
  const keys = l.allowlist?.keys ?? [];
  const part = l.key[0]!;
  if (
    singleValue !== null &&
    keys.some((k) => singleIdentity(part, k) === countedIdentity(part, singleValue))
  ) {
    return `${keyPartText(part)} is in this route's allowlist keys`;
  }
  return null;
}

/** The windows the request is counted against, and which plan they are (null: the route has no plans). */
function planOf(
  l: RouteLimits,
  headers: Readonly<Record<string, string>>,
  singleValue: string | null,
): { windows: readonly WindowSpec[]; plan: string | null } {
  const plans = l.plans;
  if (plans === null) return { windows: l.windows, plan: null };
  const fallback = (why: string) => ({ windows: l.windows, plan: `default (${why})` });
  if (plans.by.type === 'header') {
    const name = plans.by.name;
    const sent = headers[name];
    // Header-chosen plan values are tier names, not secrets: listing them helps spot a typo.
    const listed = `listed: ${plans.values.map((x) => x.value).join(', ')}`;
    if (sent === undefined) return fallback(`no ${name} header; ${listed}`);
    const p = plans.values.find((x) => x.value === sent);
    return p
      ? {
          windows: p.windows,
          plan: `${p.value} (header ${name} = ${sent}) from a trusted proxy (client_ip.trusted_proxies); the default from anyone else (a client's own header is ignored)`,
        }
      : fallback(`header ${name} = ${sent} is not a listed plan; ${listed}`);
  }
  const part = l.key[0]!;
  if (singleValue === null) return fallback(`no ${keyPartText(part)} to choose a plan by`);
  const id = countedIdentity(part, singleValue);
  const p = plans.values.find((x) => singleIdentity(part, x.value) === id);
  return p
    ? { windows: p.windows, plan: `${p.value} (by the key's value)` }
    : fallback("the key's value is not a listed plan");
}

function keyText(key: readonly KeyPart[], values: readonly PartValue[]): string {
  if (key.length === 1) {
    const part = key[0]!;
    const v = values[0]!;
    if (part.type === 'ip') return v.kind === 'value' ? `client ip ${v.value}` : 'client ip';
    // The data plane counts a request without the header (or with it empty) by client IP.
    if (part.type === 'header')
      return v.kind === 'value' && v.value !== ''
        ? `header ${part.name} = ${v.value}`
        : `header ${part.name} (not sent, so counted by client ip)`;
    return partText(part, v, 'so every request without it shares one count');
  }
  return `${key.map((p, i) => partText(p, values[i]!, 'counted as empty')).join(', ')} (counted per combination)`;
}

function partText(part: KeyPart, v: PartValue, absent: string): string {
  if (v.kind === 'duplicate') return `${keyPartText(part)} (given more than once)`;
  switch (part.type) {
    case 'ip':
      return v.kind === 'value' ? `ip = ${v.value}` : 'ip = the client ip';
    case 'header':
      return v.kind === 'value'
        ? `header ${part.name} = ${v.value}`
        : `header ${part.name} (not sent, ${absent})`;
    case 'path':
      return v.kind === 'value' && v.value !== ''
        ? `path:${part.segment} = ${v.value}`
        : `path:${part.segment} (no such segment, ${absent})`;
    case 'query':
      return v.kind === 'value'
        ? `query ${part.name} = ${v.value}`
        : `query ${part.name} (not sent, ${absent})`;
  }
}

function windowsText(windows: readonly WindowSpec[]): string {
  return windows.map((w) => `${w.name} ${w.limit} per ${formatDuration(w.windowMs)}`).join(', ');
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

function costNote(l: RouteLimits): string {
  if (l.cost.type === 'header')
    return `cost from ${l.cost.name}: 1 to ${l.cost.max}, default ${l.cost.default}`;
  return l.cost.units === 1 ? '' : `cost ${l.cost.units}`;
}

function limitsText(l: RouteLimits): string {
  const key = l.key.map((p) => (p.type === 'header' ? `header ${p.name}` : keyPartText(p))).join(' + ');
  const windows = l.windows.map((w) => `${w.name} ${w.limit}/${formatDuration(w.windowMs)}`).join(', ');
  const notes = [
    l.algorithm === 'sliding-log' ? '' : l.algorithm,
    l.shadow ? 'shadow' : '',
    costNote(l),
    l.rejection.status === 429 ? '' : `rejects ${l.rejection.status}`,
    l.clientHeaders === 'both' ? '' : `client headers ${l.clientHeaders}`,
  ].filter(Boolean);
  // Plan values and allowlisted keys may be API keys: only their number is shown.
  const extra: string[] = [];
  if (l.plans) {
    const by = l.plans.by.type === 'key' ? 'key' : `header ${l.plans.by.name}`;
    extra.push(`${plural(l.plans.values.length, 'plan')} by ${by}`);
  }
  if (l.allowlist) {
    const n = l.allowlist.ips.length + l.allowlist.keys.length;
    extra.push(`${plural(n, 'allowlist entry', 'allowlist entries')}`);
  }
  return `per ${key}: ${windows}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}${extra.map((e) => `, ${e}`).join('')}`;
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

function plural(n: number, word: string, words = `${word}s`): string {
  return `${n} ${n === 1 ? word : words}`;
}
