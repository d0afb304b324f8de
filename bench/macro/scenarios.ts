// What the macro benchmark measures: the numbered scenarios (bench/README.md), the processes they run against, and the
// policy each floodgate process loads. One floodgate process serves several scenarios (one route each),
// so only three are needed: the memory store, and Redis with ioredis auto-pipelining off (the default)
// and on. Beside them, two references: nginx, and the bare forwarder (bare-forwarder.ts), the least a
// Node proxy can do per request.

/** The processes a scenario can be pointed at. */
export type TargetId =
  | 'upstream'
  | 'bare'
  | 'fg-memory'
  | 'fg-redis'
  | 'fg-redis-autopipe'
  | 'fg-redis-refusal-cache'
  | 'nginx';

export interface Scenario {
  readonly id: string;
  readonly label: string;
  /** Its scenario number, as bench/README.md numbers them (1-8). */
  readonly issue: number;
  readonly target: TargetId;
  readonly path: string;
  /**
   * Every request carries an x-bench-key header, cycling over KEY_COUNT values (the limited routes key
   * on it; the others ignore it), so that every scenario sends the same traffic and costs the load
   * generator the same: only the system under test differs. `fixedKey` sends this one value instead
   * (the over-limit key), in as many header sets.
   */
  readonly fixedKey?: string;
  /** The status every response should have; anything else is reported. */
  readonly expect: number;
}

/** Distinct rate-limit identities the limited scenarios cycle through. */
export const KEY_COUNT = 1_000;
/** Header the limited routes key on. */
export const KEY_HEADER = 'x-bench-key';
export const OVER_LIMIT_KEY = 'over-limit';

export const SCENARIOS: readonly Scenario[] = [
  {
    id: 'direct',
    label: 'direct (upstream)',
    issue: 1,
    target: 'upstream',
    path: '/plain',
    expect: 200,
  },
  {
    id: 'bare',
    label: 'bare forwarder (node:http + undici)',
    issue: 8,
    target: 'bare',
    path: '/plain',
    expect: 200,
  },
  {
    id: 'proxy',
    label: 'proxy, no limits',
    issue: 2,
    target: 'fg-memory',
    path: '/plain',
    expect: 200,
  },
  {
    id: 'memory-log',
    label: 'memory, sliding-log',
    issue: 3,
    target: 'fg-memory',
    path: '/log',
    expect: 200,
  },
  {
    id: 'memory-counter',
    label: 'memory, sliding-counter',
    issue: 3,
    target: 'fg-memory',
    path: '/counter',
    expect: 200,
  },
  {
    id: 'redis-log',
    label: 'redis, sliding-log',
    issue: 4,
    target: 'fg-redis',
    path: '/log',
    expect: 200,
  },
  {
    id: 'redis-counter',
    label: 'redis, sliding-counter',
    issue: 4,
    target: 'fg-redis',
    path: '/counter',
    expect: 200,
  },
  {
    id: 'redis-log-autopipe',
    label: 'redis, sliding-log, auto-pipelining',
    issue: 4,
    target: 'fg-redis-autopipe',
    path: '/log',
    expect: 200,
  },
  {
    id: 'redis-counter-autopipe',
    label: 'redis, sliding-counter, auto-pipelining',
    issue: 4,
    target: 'fg-redis-autopipe',
    path: '/counter',
    expect: 200,
  },
  {
    id: 'breaker-open',
    label: 'open breaker (503 fast path)',
    issue: 5,
    target: 'fg-memory',
    path: '/fail',
    expect: 503,
  },
  {
    id: 'reject',
    label: 'over limit (429, redis)',
    issue: 6,
    target: 'fg-redis',
    path: '/reject',
    fixedKey: OVER_LIMIT_KEY,
    expect: 429,
  },
  {
    id: 'reject-cached',
    label: 'over limit (429, redis, refusal_cache)',
    issue: 6,
    target: 'fg-redis-refusal-cache',
    path: '/reject',
    fixedKey: OVER_LIMIT_KEY,
    expect: 429,
  },
  {
    id: 'nginx',
    label: 'nginx (1 worker)',
    issue: 7,
    target: 'nginx',
    path: '/plain',
    expect: 200,
  },
];

/**
 * The fixed-rate test: these scenarios at the same rate, well below saturation, for latency (p99 added
 * over direct) and for CPU time per response (the CPU_RATIOS below).
 */
export const RATE_SCENARIOS: readonly string[] = [
  'direct',
  'bare',
  'proxy',
  'memory-log',
  'memory-counter',
  'redis-log',
  'redis-counter',
  'redis-log-autopipe',
  'nginx',
];

/**
 * Per-scenario entry points (`--scenario NAME`, one npm script each): the scenario with the baselines
 * its ratios need.
 */
export const GROUPS: Readonly<
  Record<string, { readonly throughput: readonly string[]; readonly rate: readonly string[] }>
> = {
  direct: { throughput: ['direct'], rate: ['direct'] },
  bare: { throughput: ['direct', 'bare', 'proxy'], rate: ['direct', 'bare', 'proxy'] },
  proxy: { throughput: ['direct', 'bare', 'proxy'], rate: ['direct', 'bare', 'proxy'] },
  memory: {
    throughput: ['proxy', 'memory-log', 'memory-counter'],
    rate: ['proxy', 'memory-log', 'memory-counter'],
  },
  redis: {
    throughput: ['proxy', 'redis-log', 'redis-counter', 'redis-log-autopipe', 'redis-counter-autopipe'],
    rate: ['direct', 'proxy', 'redis-log', 'redis-counter', 'redis-log-autopipe'],
  },
  breaker: { throughput: ['proxy', 'breaker-open'], rate: [] },
  reject: { throughput: ['proxy', 'reject', 'reject-cached'], rate: [] },
  nginx: {
    throughput: ['direct', 'bare', 'proxy', 'redis-log', 'redis-counter', 'nginx'],
    rate: ['direct', 'bare', 'proxy', 'redis-log', 'nginx'],
  },
};

/** The performance targets, as ratios between scenarios (numerator / denominator, same run). */
export interface RatioSpec {
  readonly id: string;
  readonly label: string;
  readonly num: string;
  readonly den: string;
  /** The issue's floor for this ratio, when it sets one. */
  readonly floor?: number;
}

export const RATIOS: readonly RatioSpec[] = [
  { id: 'proxy/direct', label: 'proxy / direct', num: 'proxy', den: 'direct' },
  { id: 'proxy/bare', label: 'proxy (no limits) / bare forwarder', num: 'proxy', den: 'bare' },
  { id: 'memory-log/proxy', label: 'memory sliding-log / proxy', num: 'memory-log', den: 'proxy' },
  {
    id: 'memory-counter/proxy',
    label: 'memory sliding-counter / proxy',
    num: 'memory-counter',
    den: 'proxy',
  },
  { id: 'redis-log/proxy', label: 'redis sliding-log / proxy', num: 'redis-log', den: 'proxy', floor: 0.85 },
  {
    id: 'redis-counter/proxy',
    label: 'redis sliding-counter / proxy',
    num: 'redis-counter',
    den: 'proxy',
    floor: 0.85,
  },
  {
    id: 'redis-log-autopipe/proxy',
    label: 'redis sliding-log, auto-pipelining / proxy',
    num: 'redis-log-autopipe',
    den: 'proxy',
  },
  {
    id: 'redis-counter-autopipe/proxy',
    label: 'redis sliding-counter, auto-pipelining / proxy',
    num: 'redis-counter-autopipe',
    den: 'proxy',
  },
  { id: 'proxy/nginx', label: 'proxy (no limits) / nginx', num: 'proxy', den: 'nginx', floor: 0.6 },
  { id: 'redis-log/nginx', label: 'redis sliding-log / nginx', num: 'redis-log', den: 'nginx', floor: 0.5 },
  {
    id: 'redis-counter/nginx',
    label: 'redis sliding-counter / nginx',
    num: 'redis-counter',
    den: 'nginx',
    floor: 0.5,
  },
  { id: 'bare/nginx', label: 'bare forwarder / nginx', num: 'bare', den: 'nginx' },
  { id: 'breaker-open/proxy', label: 'open breaker / proxy', num: 'breaker-open', den: 'proxy' },
  { id: 'reject/proxy', label: '429 over limit / proxy', num: 'reject', den: 'proxy' },
  {
    id: 'reject-cached/proxy',
    label: '429 over limit, refusal_cache / proxy',
    num: 'reject-cached',
    den: 'proxy',
  },
];

/** The fixed-rate target: added p99 over direct, in ms. */
export const ADDED_P99_TARGET_MS = 1;

/**
 * Costs at the fixed rate: the SUT's CPU µs per response, numerator over denominator (median of the
 * per-round ratios). Unlike req/s, neither the load generator's core nor a shared core decides them.
 */
export interface CpuRatioSpec {
  readonly id: string;
  readonly label: string;
  readonly num: string;
  readonly den: string;
  /** The most the numerator may cost, as a multiple of the denominator; none: reported only. */
  readonly ceiling?: number;
}

export const CPU_RATIOS: readonly CpuRatioSpec[] = [
  {
    id: 'proxy/bare',
    label: 'floodgate, no limits / bare forwarder',
    num: 'proxy',
    den: 'bare',
    ceiling: 1.15,
  },
  {
    id: 'memory-log/proxy',
    label: 'memory sliding-log / no limits',
    num: 'memory-log',
    den: 'proxy',
    ceiling: 1.1,
  },
  {
    id: 'memory-counter/proxy',
    label: 'memory sliding-counter / no limits',
    num: 'memory-counter',
    den: 'proxy',
    ceiling: 1.1,
  },
  {
    id: 'redis-log/proxy',
    label: 'redis sliding-log / no limits (proxy CPU)',
    num: 'redis-log',
    den: 'proxy',
    ceiling: 1.2,
  },
  {
    id: 'redis-counter/proxy',
    label: 'redis sliding-counter / no limits (proxy CPU)',
    num: 'redis-counter',
    den: 'proxy',
    ceiling: 1.2,
  },
  { id: 'proxy/nginx', label: 'floodgate, no limits / nginx', num: 'proxy', den: 'nginx' },
  { id: 'bare/nginx', label: 'bare forwarder / nginx', num: 'bare', den: 'nginx' },
];

/** Redis server CPU per rate-limit decision, at the fixed rate and at saturation, in µs. */
export const REDIS_US_PER_DECISION_TARGET = 8;
/** The Redis-limited scenarios whose decisions that target covers. */
export const REDIS_DECISION_SCENARIOS: readonly string[] = ['redis-log', 'redis-counter'];

export interface PolicyOptions {
  readonly upstreamPort: number;
  readonly store: 'memory' | 'redis';
  readonly redisUrl: string;
  /** Redis key prefix, unique per run so runs never share (or leave behind) counters. */
  readonly prefix: string;
  /** The policy's `workers` (1 when left out). */
  readonly workers?: number;
  /** store.refusal_cache (Redis only): refusals replayed locally for up to a second. */
  readonly refusalCache?: boolean;
}

/**
 * Hourly + daily windows, as the issue's Redis target describes, with limits far above what any run
 * sends per key (KEY_COUNT keys share the load), so every limited request is admitted: the cost of a
 * decision does not depend on the limit's value, only on the windows and the algorithm. /reject has a
 * limit of 1 and one fixed key, primed before the rounds, so every measured request is refused.
 * on_error: deny, so a store failure shows up as unexpected 503s instead of quietly measuring the
 * in-process fallback.
 */
export function policyYaml(o: PolicyOptions): string {
  const upstream = `http://127.0.0.1:${o.upstreamPort}`;
  const limited = (algorithm: string) =>
    `{ key: "header:${KEY_HEADER}", hourly: 1000000, daily: 10000000, algorithm: ${algorithm} }`;
  const store =
    o.store === 'memory'
      ? '{ type: memory }'
      : `{ type: redis, url: "${o.redisUrl}", prefix: "${o.prefix}", timeout: 250ms, on_error: deny${o.refusalCache ? ', refusal_cache: true' : ''} }`;
  return `# generated by bench/macro/macro.ts
version: 1
listen: 127.0.0.1:0
workers: ${o.workers ?? 1}
admin: { listen: 127.0.0.1:0 }
store: ${store}
client_ip:
  trusted_proxies: [127.0.0.1/32]   # as config/proxy.yaml: the load generator connects from loopback
upstreams:
  app:
    url: ${upstream}
    timeouts: { connect: 2s, response: 10s, idle: 10s }
  flaky:
    url: ${upstream}
    timeouts: { connect: 2s, response: 10s, idle: 10s }
    breaker: { failure_threshold: 5, success_threshold: 2, timeout: 1h, half_open_max_calls: 1 }
routes:
  - name: plain
    match: { path: /plain }
    upstream: app
  - name: log
    match: { path: /log }
    upstream: app
    limits: ${limited('sliding-log')}
  - name: counter
    match: { path: /counter }
    upstream: app
    limits: ${limited('sliding-counter')}
  - name: fail
    match: { path: /fail }
    upstream: flaky
  - name: reject
    match: { path: /reject }
    upstream: app
    limits: { key: "header:${KEY_HEADER}", hourly: 1, daily: 10 }
`;
}
