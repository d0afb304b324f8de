// Micro benchmarks of the proxy's per-request functions, one each, without the network, so that a
// regression in one of them shows up on its own: route match (10 and 500 routes), key extraction
// (client IP resolution and the route's key), rate limit header formatting, the memory store's
// decision, and the breaker's admission check. Ratios between runs matter, not absolute numbers.
//
//   npx tsx bench/micro/hot-paths.ts [--quick]
//
// Prints a table and writes bench/results/micro.json.
import type { IncomingMessage } from 'node:http';
import { CircuitBreaker } from '../../core/breaker/circuit-breaker.js';
import { ManualClock } from '../../core/clock.js';
import { canonicalIp, compileTrustedProxies } from '../../proxy/http/client-ip.js';
import { compileKey } from '../../proxy/http/limit-key.js';
import { normalizeTarget } from '../../proxy/http/normalize-path.js';
import { compileRoutes, type RouteMatchSpec } from '../../proxy/http/router.js';
import { limitHeaders, rateLimitPolicy } from '../../proxy/ratelimit/headers.js';
import { validateWindows } from '../../proxy/ratelimit/limiter.js';
import { MemoryRateLimitStore } from '../../proxy/ratelimit/memory-store.js';
import type { Algorithm, Decision } from '../../proxy/ratelimit/store.js';
import { fixed, int, machine, pct, table, writeResult } from '../lib/report.js';
import { DEFAULT_OPTIONS, type MicroResult, measure, QUICK_OPTIONS } from './harness.js';

const QUICK = process.argv.includes('--quick');
const OPTIONS = QUICK ? QUICK_OPTIONS : DEFAULT_OPTIONS;
const BATCH = 1_024;
const HOUR = 3_600_000;
const DAY = 86_400_000;

// --- Route match: a table like a real gateway's (exact API paths, prefix routes of several depths),
// and request paths that hit early, late, by prefix, and miss.
function routeTable(n: number): { match: RouteMatchSpec; name: string }[] {
  const routes: { match: RouteMatchSpec; name: string }[] = [];
  for (let i = 0; i < n; i++) {
    const prefix = i % 2 === 1;
    const methods = i % 3 === 0 ? ['GET', 'POST'] : null;
    const path = prefix ? `/svc${i}/v${i % 4}/` : `/api/v${i % 3}/resource${i}`;
    routes.push({ name: `r${i}`, match: { path, prefix, methods } });
  }
  routes.push({ name: 'catch-all', match: { path: '/', prefix: true, methods: null } });
  return routes;
}

function routePaths(n: number): string[] {
  const paths: string[] = [];
  for (let k = 0; k < 64; k++) {
    const i = (k * 7919) % n;
    if (k % 4 === 0)
      paths.push(`/api/v${i % 3}/resource${i - (i % 2)}`); // exact
    else if (k % 4 === 1)
      paths.push(`/svc${i | 1}/v${(i | 1) % 4}/items/${k}/detail`); // prefix, deep
    else if (k % 4 === 2)
      paths.push(`/status/${k}`); // falls to the catch-all
    else paths.push(`/api/v9/unknown/${k}/x/y/z`); // catch-all after several prefix probes
  }
  return paths;
}

function routeMatch(n: number): MicroResult {
  const table = compileRoutes(routeTable(n));
  const paths = routePaths(n);
  const methods = ['GET', 'POST', 'PUT', 'DELETE'];
  let k = 0;
  return measure(
    `route match, ${n} routes`,
    BATCH,
    () => {
      let hits = 0;
      for (let i = 0; i < BATCH; i++, k++) {
        const r = table.match(methods[k & 3]!, paths[k & 63]!);
        if (r !== undefined) hits += r.name.length;
      }
      return hits;
    },
    OPTIONS,
  );
}

// --- Key extraction: what DataPlane does before the limiter (canonical peer, trusted-proxy check,
// X-Forwarded-For walk when the peer is trusted, then the route's key function).
function fakeRequests(kind: 'direct' | 'forwarded' | 'header'): IncomingMessage[] {
  return Array.from({ length: 256 }, (_, i) => {
    const client = `198.51.${i >> 4}.${i & 15}`;
    const headers: Record<string, string> =
      kind === 'forwarded'
        ? { 'x-forwarded-for': `${client}, 10.0.${i & 7}.1` }
        : kind === 'header'
          ? { 'x-api-key': `key-${i.toString(36)}-${'k'.repeat(16)}` }
          : {};
    const remoteAddress = kind === 'direct' ? `::ffff:${client}` : '::ffff:127.0.0.1';
    return { socket: { remoteAddress }, headers } as unknown as IncomingMessage;
  });
}

function keyExtraction(kind: 'direct' | 'forwarded' | 'header'): MicroResult {
  const resolver = compileTrustedProxies(['127.0.0.1/32', '10.0.0.0/8']);
  const keyOf = compileKey(kind === 'header' ? [{ type: 'header', name: 'x-api-key' }] : [{ type: 'ip' }]);
  const target = normalizeTarget('/v1/users/42')!;
  const reqs = fakeRequests(kind);
  const label = {
    direct: 'key extraction: ip, untrusted peer',
    forwarded: 'key extraction: ip via trusted proxy, 2-hop X-Forwarded-For',
    header: 'key extraction: header:X-API-Key',
  }[kind];
  let k = 0;
  return measure(
    label,
    BATCH,
    () => {
      let len = 0;
      for (let i = 0; i < BATCH; i++, k++) {
        const req = reqs[k & 255]!;
        const peer = canonicalIp(req.socket.remoteAddress ?? '');
        const clientIp = resolver.trusts(peer)
          ? resolver.resolve(peer, req.headers['x-forwarded-for'])
          : peer;
        const id = keyOf(req, clientIp, target);
        len += typeof id === 'string' ? id.length : 0;
      }
      return len;
    },
    OPTIONS,
  );
}

// --- Header formatting: the five rate limit headers of an allowed response, hourly + daily.
function headerFormatting(): MicroResult {
  const windows = validateWindows([
    { name: 'hourly', limit: 100, windowMs: HOUR },
    { name: 'daily', limit: 1_000, windowMs: DAY },
  ]);
  const policy = rateLimitPolicy(windows);
  const now = 1_700_000_000_000;
  const decisions: Decision[] = Array.from({ length: 256 }, (_, i) => ({
    allowed: true,
    now,
    windows: windows.map((w, j) => ({
      name: w.name,
      limit: w.limit,
      windowMs: w.windowMs,
      remaining: (i * (j + 3)) % w.limit,
      resetAt: now + ((i * 997 * (j + 1)) % w.windowMs),
      retryAfterMs: 0,
    })),
  }));
  let k = 0;
  return measure(
    'limit headers (hourly + daily)',
    BATCH,
    () => {
      let len = 0;
      for (let i = 0; i < BATCH; i++, k++) len += limitHeaders(policy, decisions[k & 255]!).ratelimit.length;
      return len;
    },
    OPTIONS,
  );
}

// --- The memory store's decision (hitSync: the store alone; the limiter's check() adds a key cache and
// a promise, see bench/micro/limiter.ts). 10,000 identities in turn at 90% of their hourly limit on a
// pinned clock, so nearly every decision admits and counts in both windows.
function memoryDecision(algorithm: Algorithm): MicroResult {
  const windows = validateWindows([
    { name: 'hourly', limit: 100, windowMs: HOUR },
    { name: 'daily', limit: 1_000, windowMs: DAY },
  ]);
  const clock = new ManualClock(Math.floor(Date.now() / DAY) * DAY);
  const store = new MemoryRateLimitStore({ clock, maxKeys: 100_000 });
  const keys = Array.from({ length: 10_000 }, (_, i) => `route:${i.toString(36).padStart(16, 'x')}`);
  const stepMs = HOUR / 100 / 0.9 / keys.length;
  let k = 0;
  let allowed = 0;
  let total = 0;
  const r = measure(
    `memory store decision, ${algorithm}`,
    BATCH,
    () => {
      let ok = 0;
      for (let i = 0; i < BATCH; i++, k++) {
        clock.advance(stepMs);
        if (store.hitSync(keys[k % keys.length]!, windows, algorithm).allowed) ok++;
      }
      allowed += ok;
      total += BATCH;
      return ok;
    },
    OPTIONS,
  );
  return { ...r, name: `${r.name} (${pct(allowed / total)} admitted)` };
}

// --- Breaker admission: what every forwarded request does on a closed circuit, and the fast-fail
// path of an open one (admission refused, Retry-After computed).
function breakerClosed(): MicroResult {
  const breaker = new CircuitBreaker({
    name: 'bench',
    failureThreshold: 5,
    successThreshold: 2,
    timeoutMs: 60_000,
    halfOpenMaxCalls: 3,
  });
  return measure(
    'breaker: canExecute + recordSuccess (CLOSED)',
    BATCH,
    () => {
      let n = 0;
      for (let i = 0; i < BATCH; i++) {
        if (breaker.canExecute()) {
          breaker.recordSuccess(1);
          n++;
        }
      }
      return n;
    },
    OPTIONS,
  );
}

function breakerOpen(): MicroResult {
  const clock = new ManualClock();
  const breaker = new CircuitBreaker({ name: 'bench', failureThreshold: 1, timeoutMs: 3_600_000, clock });
  breaker.canExecute();
  breaker.recordFailure();
  if (breaker.state !== 'OPEN') throw new Error('breaker did not open');
  return measure(
    'breaker: canExecute refused + retryAfterMs (OPEN)',
    BATCH,
    () => {
      let ms = 0;
      for (let i = 0; i < BATCH; i++) if (!breaker.canExecute()) ms += breaker.retryAfterMs() & 1;
      return ms;
    },
    OPTIONS,
  );
}

function main(): void {
  const t0 = performance.now();
  const results: MicroResult[] = [
    routeMatch(10),
    routeMatch(500),
    keyExtraction('direct'),
    keyExtraction('forwarded'),
    keyExtraction('header'),
    headerFormatting(),
    memoryDecision('sliding-log'),
    memoryDecision('sliding-counter'),
    breakerClosed(),
    breakerOpen(),
  ];
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `\nHot-path micro benchmarks${QUICK ? ' (--quick)' : ''} (node ${process.version}; median of ${OPTIONS.samples} samples)\n`,
  );
  console.log(
    table(
      ['function', 'ops/s', 'ns/op', 'spread'],
      results.map((r) => [r.name, int(r.opsPerSecond), fixed(r.nsPerOp, 1), pct(r.spread)]),
    ),
  );
  console.log(`\n${seconds.toFixed(1)} s`);
  const out = writeResult('micro.json', {
    at: new Date().toISOString(),
    quick: QUICK,
    machine: machine(),
    options: OPTIONS,
    results,
    seconds,
  });
  console.log(`wrote ${out}`);
}

main();
