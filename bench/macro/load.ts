// The macro benchmark's load generator: a long-lived child that runs autocannon (programmatic API) each
// time its parent asks, over IPC. It runs as its own process so the parent can pin it to one core
// (`taskset -c 1 node --import tsx bench/macro/load.ts`) and keep that core free of everything else.
//
// Latency is recorded here, from autocannon's per-response event, in floating-point milliseconds and
// for every status: autocannon's own histogram has 1 ms resolution and only counts 2xx answers, which
// would blind the 429 and 503 scenarios and round away the sub-millisecond differences that matter.
// Exits when the parent disconnects.
import autocannon from 'autocannon';

export interface LoadJob {
  readonly id: number;
  readonly url: string;
  readonly connections: number;
  readonly durationS: number;
  /** Requests per second over all connections (autocannon -R); absent: as fast as possible. */
  readonly overallRate?: number;
  /** Header sets cycled through request by request (e.g. many distinct rate-limit keys). */
  readonly headerSets?: readonly Record<string, string>[];
}

export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly mean: number;
  readonly max: number;
}

export interface LoadResult {
  readonly responses: number;
  readonly seconds: number;
  readonly rps: number;
  /** Status code → responses. */
  readonly statuses: Record<string, number>;
  readonly errors: number;
  readonly timeouts: number;
  readonly latencyMs: LatencySummary;
}

export type LoadReply =
  | { readonly id: number; readonly ok: true; readonly result: LoadResult }
  | { readonly id: number; readonly ok: false; readonly error: string };

/** The value at quantile q of an ascending array (nearest rank). */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * autocannon builds every entry of `requests` for each of its connections, so 100 connections × 1,000
 * header sets would cost 100,000 request builds (seconds, on a busy core) before the first request. With
 * several header sets, each connection therefore gets its own autocannon instance and its own slice of
 * the sets: 1,000 builds in all. They share this process's event loop, like one instance's connections.
 */
function plan(job: LoadJob): autocannon.Options[] {
  const base = { url: job.url, pipelining: 1, timeout: 10, sampleInt: 100 };
  const sets = job.headerSets ?? [];
  const groups = sets.length > 1 ? Math.min(job.connections, sets.length) : 1;
  return Array.from({ length: groups }, (_, g) => {
    const mine = sets.filter((_, i) => i % groups === g);
    const rate = job.overallRate
      ? Math.floor(job.overallRate / groups) + (g < job.overallRate % groups ? 1 : 0)
      : 0;
    return {
      ...base,
      connections: Math.floor(job.connections / groups) + (g < job.connections % groups ? 1 : 0),
      duration: job.durationS,
      ...(rate > 0 ? { overallRate: rate } : {}),
      ...(mine.length > 0 ? { requests: mine.map((headers) => ({ method: 'GET' as const, headers })) } : {}),
    };
  });
}

async function run(job: LoadJob): Promise<LoadResult> {
  let latencies = new Float64Array(1 << 16);
  let n = 0;
  let errors = 0;
  let timeouts = 0;
  const statuses: Record<string, number> = {};
  const record = (statusCode: number, responseTimeMs: number): void => {
    if (n === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[n++] = responseTimeMs;
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
  };
  const done: Promise<void>[] = [];
  for (const opts of plan(job)) {
    done.push(
      new Promise<void>((resolve, reject) => {
        const instance = autocannon(opts, (err, result) => {
          if (err) return reject(err);
          errors += result.errors;
          timeouts += result.timeouts;
          resolve();
        });
        instance.on('response', (_client, statusCode, _bytes, responseTimeMs) =>
          record(statusCode, responseTimeMs),
        );
      }),
    );
  }
  // From here the clients are built and connecting: the measured window.
  const started = performance.now();
  await Promise.all(done);
  const seconds = (performance.now() - started) / 1000;
  const sorted = latencies.subarray(0, n).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return {
    responses: n,
    seconds,
    rps: n / seconds,
    statuses,
    errors,
    timeouts,
    latencyMs: {
      p50: quantile(sorted, 0.5),
      p90: quantile(sorted, 0.9),
      p99: quantile(sorted, 0.99),
      p999: quantile(sorted, 0.999),
      mean: n > 0 ? sum / n : Number.NaN,
      max: n > 0 ? sorted[n - 1]! : Number.NaN,
    },
  };
}

if (process.send) {
  process.on('message', (job: LoadJob) => {
    run(job).then(
      (result) => process.send!({ id: job.id, ok: true, result } satisfies LoadReply),
      (err: unknown) => process.send!({ id: job.id, ok: false, error: String(err) } satisfies LoadReply),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
