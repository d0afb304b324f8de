// The macro benchmark: autocannon against the upstream directly, a bare Node forwarder, floodgate in its
// configurations, and nginx, alternating scenario by scenario in rounds (A B C … A B C …) so that the
// ratios hold on a noisy machine. Then a fixed-rate test (latency, and CPU time per response), then the
// multi-core scenario where the machine has the cores for it. Prints tables; writes
// bench/results/macro.json (macro-<scenario>.json for --scenario, macro-only.json for --only).
//
//   npx tsx bench/macro/macro.ts [--quick]
//                                [--scenario direct|bare|proxy|memory|redis|breaker|reject|nginx|multicore]
//                                [--only id,id] [--rounds N] [--rate-rounds N] [--duration S] [--profile] [--no-build]
//
// --profile runs each floodgate with --cpu-prof and prints where its CPU went (bench/results/profiles/).
// Env: REDIS_URL (redis://127.0.0.1:6379), NGINX (path to nginx), LOG_LEVEL (the proxies'), and
// BENCH_KEEP_TMP=1 to keep the generated configs and logs.
//
// Placement on a 2-core machine (taskset, when present): the system under test (floodgate or nginx)
// runs alone on core 0; the load generator and the upstream share core 1; Redis runs wherever the OS
// puts it. So each proxy has a whole core, and "direct" measures what core 1 can drive without one.
// Besides req/s, every run records the CPU time the system under test spent per request, which holds
// better than req/s on a shared machine. A throughput ratio is INVALID when the load generator's core
// or a shared core decided it (bench/lib/saturation.ts); the CPU per response is the figure then. Only
// loopback addresses are used. Every child is killed when the benchmark ends, fails or is interrupted.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { projectPath } from '../../core/paths.js';
import { fixed, int, machine, median, pct, signedMs, table, writeResult } from '../lib/report.js';
import { ceilingVerdict, heldBack, SATURATED, throughputVerdict, type Verdict } from '../lib/saturation.js';
import { type LoadJob, type LoadResult, quantile } from './load.js';
import { printMultiCore, runMultiCore } from './multicore.js';
import {
  coreBusy,
  coreTimes,
  cpuSeconds,
  ensureBuilt,
  findNginx,
  installCleanup,
  type LoadGenerator,
  onShutdown,
  startBareForwarder,
  startFloodgate,
  startLoadGenerator,
  startNginx,
  startUpstream,
  stopAll,
  stopChild,
  type Target,
  taskset,
  tempDir,
} from './processes.js';
import { summarizeProfile } from './profile-summary.js';
import {
  ADDED_P99_TARGET_MS,
  CPU_RATIOS,
  GROUPS,
  KEY_COUNT,
  KEY_HEADER,
  OVER_LIMIT_KEY,
  policyYaml,
  RATE_SCENARIOS,
  RATIOS,
  REDIS_DECISION_SCENARIOS,
  REDIS_US_PER_DECISION_TARGET,
  SCENARIOS,
  type Scenario,
  type TargetId,
} from './scenarios.js';

const { values: argv } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    scenario: { type: 'string' },
    only: { type: 'string' },
    rounds: { type: 'string' },
    'rate-rounds': { type: 'string' },
    duration: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
  },
  strict: true,
});

const QUICK = argv.quick;
const SETTINGS = {
  connections: 100,
  rounds: Number(argv.rounds ?? (QUICK ? 2 : 3)),
  durationS: Number(argv.duration ?? (QUICK ? 0.4 : 2)),
  warmupS: QUICK ? 0.3 : 0.7,
  rate: {
    /**
     * autocannon -R: requests per second over all connections. The issue sets the CPU targets at 1,500
     * req/s; the latency target and the CPU-per-response table come from the same runs. Each SUT keeps
     * it on the 2-core VM at under 30% of its core (bench/README.md), well below saturation.
     */
    overallRate: 1_500,
    /**
     * autocannon paces -R per connection and per second: each connection sends its share back to back
     * at the start of every second, then waits. Few connections keep those bursts small, so the system
     * stays well below saturation, as the target intends (see the closing note in bench/README.md).
     */
    connections: 2,
    // More rounds than at saturation: this VM's speed wanders by tens of percent from one run to the
    // next, and the CPU ratios, judged to within 10-15%, are medians of per-round ratios. Whole
    // seconds only: autocannon sends each second's share at its start, so 1.5 s would send 2 shares.
    rounds: Number(argv['rate-rounds'] ?? (QUICK ? 1 : 5)),
    durationS: QUICK ? 1 : 2,
  },
  /** Cores: the system under test alone on one, the load generator and the upstream on the other. */
  cores: { target: 0, load: 1, upstream: 1 },
};
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const RUN_ID = randomBytes(4).toString('hex');
const PREFIX = `fgbench:${RUN_ID}:`;

interface Sample {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly responses: number;
  /** CPU µs the system under test spent per response (the upstream's, for direct). */
  readonly cpuUsPerReq: number;
  /** Share of one core the system under test used during the run. */
  readonly cpuCoreShare: number;
  /** Share of one core used by the load generator and the upstream together (they share a core). */
  readonly harnessCoreShare: number;
  /** Busy share of each core over the run, whatever ran there (other users' processes too). */
  readonly coreBusy: number[];
  /** Redis server CPU µs per response (whole server, so other clients count too). */
  readonly redisUsPerReq: number | null;
  /** Responses per script call: how many decisions the store sent to Redis in one call. */
  readonly perCall: number | null;
  readonly statuses: Record<string, number>;
  readonly errors: number;
  readonly timeouts: number;
}

function selection(): { throughput: Scenario[]; rate: Scenario[] } {
  const byId = new Map(SCENARIOS.map((s) => [s.id, s]));
  const pick = (ids: readonly string[]) =>
    ids.map((id) => {
      const s = byId.get(id);
      if (!s) throw new Error(`unknown scenario ${id}; known: ${[...byId.keys()].join(', ')}`);
      return s;
    });
  if (argv.only) {
    const ids = argv.only.split(',').map((s) => s.trim());
    return { throughput: pick(ids), rate: pick(RATE_SCENARIOS.filter((id) => ids.includes(id))) };
  }
  if (argv.scenario) {
    const g = GROUPS[argv.scenario];
    if (!g)
      throw new Error(
        `unknown --scenario ${argv.scenario}; known: ${[...Object.keys(GROUPS), 'multicore'].join(', ')}`,
      );
    return { throughput: pick(g.throughput), rate: pick(g.rate) };
  }
  return { throughput: [...SCENARIOS], rate: pick(RATE_SCENARIOS) };
}

async function redisReachable(): Promise<Redis | null> {
  const r = new Redis(REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  r.on('error', () => {});
  try {
    await r.connect();
    await r.ping();
    return r;
  } catch {
    r.disconnect();
    return null;
  }
}

/** The Redis server's CPU seconds so far, and the script calls it has run (EVALSHA and EVAL). */
async function redisStats(r: Redis): Promise<{ cpu: number; scripts: number }> {
  const info = await r.info('all');
  const get = (re: string) => Number(new RegExp(re, 'm').exec(info)?.[1] ?? 0);
  return {
    cpu: get('^used_cpu_user:([\\d.]+)') + get('^used_cpu_sys:([\\d.]+)'),
    scripts: get('^cmdstat_evalsha:calls=(\\d+)') + get('^cmdstat_eval:calls=(\\d+)'),
  };
}

/**
 * Redis's own round trip at the fixed rate, from this process: PING over `connections` loops, each
 * sending its share of every second back to back, then waiting (autocannon -R's pattern). Any decision
 * that waits for Redis pays one such round trip, latency the proxy does not control.
 */
async function redisRoundTrip(
  r: Redis,
  o: { overallRate: number; connections: number; durationS: number },
): Promise<{ p50: number; p99: number }> {
  const ms: number[] = [];
  const perLoop = Math.floor(o.overallRate / o.connections);
  for (let second = 0; second < o.durationS; second++) {
    const started = performance.now();
    await Promise.all(
      Array.from({ length: o.connections }, async () => {
        for (let i = 0; i < perLoop; i++) {
          const t = performance.now();
          await r.ping();
          ms.push(performance.now() - t);
        }
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1_000 - (performance.now() - started))));
  }
  const sorted = Float64Array.from(ms).sort();
  return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) };
}

async function deletePrefix(r: Redis): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1_000);
    cursor = next;
    if (keys.length > 0) n += await r.unlink(...keys);
  } while (cursor !== '0');
  return n;
}

/** Sends one request from this process (not the load generator): for priming and checks. */
async function probe(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { headers });
  return { status: res.status, body: await res.text() };
}

/** The multi-core scenario (multicore.ts): runs only where the machine has the cores, else says why. */
async function multiCore(
  nginxBin: string | null,
  pinning: boolean,
  headerSets: readonly Record<string, string>[],
) {
  return runMultiCore({
    cores: machine().cpus,
    nginx: nginxBin,
    pinning,
    rounds: SETTINGS.rounds,
    durationS: SETTINGS.durationS,
    warmupS: SETTINGS.warmupS,
    connections: SETTINGS.connections,
    headerSets,
    floodgate: async (upstreamPort, cores, workers) => ({
      target: await startFloodgate({
        name: `mc-floodgate-${workers}`,
        policyYaml: policyYaml({
          upstreamPort,
          store: 'memory',
          redisUrl: REDIS_URL,
          prefix: PREFIX,
          workers,
        }),
        core: cores,
        env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
      }),
      path: '/plain',
    }),
  });
}

const keySets = Array.from({ length: KEY_COUNT }, (_, i) => ({ [KEY_HEADER]: `client-${i}` }));

async function main(): Promise<void> {
  installCleanup();
  if (argv.scenario === 'multicore') {
    if (!argv['no-build']) console.log(ensureBuilt());
    const result = await multiCore(findNginx(), taskset() !== null, keySets);
    printMultiCore(result);
    await stopAll();
    console.log(
      `wrote ${writeResult('macro-multicore.json', { at: new Date().toISOString(), machine: machine(), multiCore: result })}`,
    );
    return;
  }
  const t0 = performance.now();
  const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
  const load0 = loadavg()[0]!;
  const { throughput, rate } = selection();
  const skipped: { id: string; reason: string }[] = [];
  const skip = (pred: (s: Scenario) => boolean, reason: string) => {
    for (const list of [throughput, rate]) {
      for (let i = list.length - 1; i >= 0; i--) {
        if (!pred(list[i]!)) continue;
        if (list === throughput) skipped.push({ id: list[i]!.id, reason });
        list.splice(i, 1);
      }
    }
  };

  const nginxBin = findNginx();
  if (!nginxBin) {
    skip(
      (s) => s.target === 'nginx',
      `nginx not found${process.env.NGINX !== undefined ? ` at NGINX=${process.env.NGINX}` : ''}, so the outside ` +
        'reference and its ratios are left out (apt-get install nginx-light, or set NGINX=/path/to/nginx)',
    );
  }
  let redis: Redis | null = null;
  if ([...throughput, ...rate].some((s) => s.target.startsWith('fg-redis'))) {
    redis = await redisReachable();
    if (redis) {
      const r = redis;
      onShutdown(() => deletePrefix(r));
    }
    if (!redis) skip((s) => s.target.startsWith('fg-redis'), `Redis is not reachable at ${REDIS_URL}`);
  }
  const order = (id: string) => SCENARIOS.findIndex((s) => s.id === id);
  skipped.sort((a, b) => order(a.id) - order(b.id));
  for (const s of skipped) console.log(`SKIPPED ${s.id}: ${s.reason}`);

  const needed = new Set<TargetId>([...throughput, ...rate].map((s) => s.target));
  const usesFloodgate = [...needed].some((t) => t.startsWith('fg-'));
  const pinning = taskset() !== null;
  console.log(
    `macro benchmark${QUICK ? ' (--quick)' : ''}: ${throughput.length} scenarios × ${SETTINGS.rounds} rounds × ${SETTINGS.durationS} s, ` +
      `${SETTINGS.connections} connections; fixed rate ${SETTINGS.rate.overallRate} req/s × ${rate.length} scenarios\n` +
      (pinning
        ? `pinning: system under test on core ${SETTINGS.cores.target}; load generator and upstream on core ${SETTINGS.cores.load}; Redis unpinned\n`
        : 'pinning: taskset not found, nothing is pinned (ratios are less reliable)\n') +
      `load average at start: ${load0.toFixed(2)} on ${machine().cpus} cores` +
      (load0 > 0.5 ? '  (the machine is busy: absolute figures are low and noisy; compare ratios)' : ''),
  );
  if ((usesFloodgate || needed.has('bare')) && !argv['no-build']) console.log(ensureBuilt());

  const core = (c: number) => (pinning ? c : null);
  const [upstream, load] = await Promise.all([
    startUpstream(core(SETTINGS.cores.upstream)),
    startLoadGenerator(core(SETTINGS.cores.load)),
  ]);
  const profileDir = projectPath('bench', 'results', 'profiles');
  const spawnedAt = performance.now();
  const fg = (
    name: TargetId,
    store: 'memory' | 'redis',
    env?: Record<string, string>,
    refusalCache = false,
  ) =>
    startFloodgate({
      name,
      policyYaml: policyYaml({
        upstreamPort: upstream.port,
        store,
        redisUrl: REDIS_URL,
        // Its own keys: its over-limit key must not be primed (or refused) by another process.
        prefix: refusalCache ? `${PREFIX}cache:` : PREFIX,
        refusalCache,
      }),
      core: core(SETTINGS.cores.target),
      env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', ...env },
      ...(argv.profile
        ? {
            nodeFlags: [
              '--cpu-prof',
              `--cpu-prof-dir=${profileDir}`,
              `--cpu-prof-name=${name}-${RUN_ID}.cpuprofile`,
            ],
          }
        : {}),
    });
  const targets = new Map<TargetId, Target>();
  await Promise.all(
    [...needed].map(async (id) => {
      if (id === 'upstream') return;
      const t =
        id === 'fg-memory'
          ? await fg(id, 'memory')
          : id === 'fg-redis'
            ? await fg(id, 'redis')
            : id === 'fg-redis-autopipe'
              ? await fg(id, 'redis', { FLOODGATE_REDIS_AUTOPIPELINING: '1' })
              : id === 'fg-redis-refusal-cache'
                ? await fg(id, 'redis', undefined, true)
                : id === 'bare'
                  ? await startBareForwarder(upstream.port, core(SETTINGS.cores.target))
                  : await startNginx(nginxBin!, upstream.port, { core: core(SETTINGS.cores.target) });
      targets.set(id, t);
    }),
  );
  const urlOf = (s: Scenario) =>
    (s.target === 'upstream' ? `http://127.0.0.1:${upstream.port}` : targets.get(s.target)!.url) + s.path;
  const pidOf = (s: Scenario) =>
    s.target === 'upstream' ? upstream.child.pid : targets.get(s.target)!.child.pid;

  console.log(`started ${targets.size + 2} processes (${elapsed()})`);
  // Prime: trip the breaker of /fail (5 forwarded 503s), and push the fixed key over its limit.
  for (const s of [...throughput, ...rate]) {
    if (s.id === 'breaker-open') {
      let open = false;
      for (let i = 0; i < 50 && !open; i++) open = (await probe(urlOf(s))).body.includes('"state":"OPEN"');
      if (!open) throw new Error('breaker-open: the breaker did not open');
    }
    if (s.fixedKey === OVER_LIMIT_KEY) {
      await probe(urlOf(s), { [KEY_HEADER]: OVER_LIMIT_KEY });
      const r = await probe(urlOf(s), { [KEY_HEADER]: OVER_LIMIT_KEY });
      if (r.status !== 429) throw new Error(`reject: expected 429 after priming, got ${r.status} ${r.body}`);
    }
  }

  const jobFor = (
    s: Scenario,
    durationS: number,
    rateOpts?: { overallRate: number; connections: number },
  ): Omit<LoadJob, 'id'> => ({
    url: urlOf(s),
    connections: rateOpts?.connections ?? SETTINGS.connections,
    durationS,
    ...(rateOpts ? { overallRate: rateOpts.overallRate } : {}),
    headerSets: s.fixedKey ? keySets.map(() => ({ [KEY_HEADER]: s.fixedKey! })) : keySets,
  });

  async function measure(s: Scenario, job: Omit<LoadJob, 'id'>, gen: LoadGenerator): Promise<Sample> {
    const pid = pidOf(s);
    const withRedis = redis !== null && s.target.startsWith('fg-redis');
    const harness = () =>
      (cpuSeconds(gen.child.pid) ?? Number.NaN) +
      (s.target === 'upstream' ? 0 : (cpuSeconds(upstream.child.pid) ?? Number.NaN));
    const r0 = withRedis ? await redisStats(redis!) : null;
    const c0 = cpuSeconds(pid);
    const h0 = harness();
    const k0 = coreTimes();
    const res: LoadResult = await gen.run(job);
    const k1 = coreTimes();
    const c1 = cpuSeconds(pid);
    const h1 = harness();
    const r1 = withRedis ? await redisStats(redis!) : null;
    const cpu = c0 !== null && c1 !== null ? c1 - c0 : Number.NaN;
    return {
      rps: res.rps,
      p50: res.latencyMs.p50,
      p99: res.latencyMs.p99,
      p999: res.latencyMs.p999,
      responses: res.responses,
      cpuUsPerReq: (cpu * 1e6) / res.responses,
      cpuCoreShare: cpu / res.seconds,
      harnessCoreShare: (h1 - h0) / res.seconds,
      coreBusy: coreBusy(k0, k1),
      redisUsPerReq: r0 !== null && r1 !== null ? ((r1.cpu - r0.cpu) * 1e6) / res.responses : null,
      perCall: r0 !== null && r1 !== null ? res.responses / Math.max(1, r1.scripts - r0.scripts) : null,
      statuses: res.statuses,
      errors: res.errors,
      timeouts: res.timeouts,
    };
  }

  // Warm-up (JIT, pools, connections), discarded; then the rounds, A B C … A B C ….
  for (const s of throughput) await load.run(jobFor(s, SETTINGS.warmupS));
  // Profiles leave out what came before: start-up (module loading and compiling) and warm-up.
  const profileSkipMs = performance.now() - spawnedAt;
  const samples = new Map<string, Sample[]>(throughput.map((s) => [s.id, []]));
  for (let round = 0; round < SETTINGS.rounds; round++) {
    const line: string[] = [];
    for (const s of throughput) {
      const x = await measure(s, jobFor(s, SETTINGS.durationS), load);
      samples.get(s.id)!.push(x);
      line.push(`${s.id} ${int(x.rps)}`);
    }
    console.log(`round ${round + 1}/${SETTINGS.rounds} (${elapsed()}): ${line.join(' · ')}`);
  }
  const rateSamples = new Map<string, Sample[]>(rate.map((s) => [s.id, []]));
  for (let round = 0; round < SETTINGS.rate.rounds; round++) {
    for (const s of rate)
      rateSamples.get(s.id)!.push(await measure(s, jobFor(s, SETTINGS.rate.durationS, SETTINGS.rate), load));
  }

  const redisRtt =
    redis !== null && rate.some((s) => s.target.startsWith('fg-redis'))
      ? await redisRoundTrip(redis, {
          ...SETTINGS.rate,
          durationS: SETTINGS.rate.rounds * SETTINGS.rate.durationS,
        })
      : null;
  console.log(`fixed-rate runs done (${elapsed()})`);
  // Store errors, from each Redis-backed proxy's own metrics.
  const storeErrors: Record<string, number> = {};
  for (const [id, t] of targets) {
    if (!id.startsWith('fg-redis') || !t.adminUrl) continue;
    const text = await (await fetch(`${t.adminUrl}/metrics`)).text();
    storeErrors[id] = Number(/^rate_limit_store_errors_total (\S+)/m.exec(text)?.[1] ?? 0);
  }

  // Stop the proxies first (gracefully, so --cpu-prof profiles get written), then the rest.
  await Promise.all([...targets.values()].map((t) => stopChild(t.child, argv.profile ? 20_000 : 3_000)));
  await stopAll();
  if (redis) {
    await deletePrefix(redis);
    redis.disconnect();
  }
  // After the 2-core scenarios, whose processes are gone now: it needs the cores to itself.
  const multi = argv.only || argv.scenario ? null : await multiCore(nginxBin, pinning, keySets);

  // --- Results.
  const sum = (xs: Sample[]) => {
    const statuses: Record<string, number> = {};
    let errors = 0;
    let timeouts = 0;
    for (const x of xs) {
      for (const [k, v] of Object.entries(x.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
      errors += x.errors;
      timeouts += x.timeouts;
    }
    return { statuses, errors, timeouts };
  };
  const describe = (s: Scenario, xs: Sample[]) => {
    const { statuses, errors, timeouts } = sum(xs);
    const total = Object.values(statuses).reduce((a, b) => a + b, 0);
    const unexpected = total - (statuses[String(s.expect)] ?? 0);
    const present = (v: (x: Sample) => number | null) => {
      const vs = xs.map(v).filter((x): x is number => x !== null);
      return vs.length > 0 ? median(vs) : null;
    };
    return {
      id: s.id,
      label: s.label,
      issue: s.issue,
      target: s.target,
      expect: s.expect,
      rps: median(xs.map((x) => x.rps)),
      p50Ms: median(xs.map((x) => x.p50)),
      p99Ms: median(xs.map((x) => x.p99)),
      p999Ms: median(xs.map((x) => x.p999)),
      cpuUsPerReq: median(xs.map((x) => x.cpuUsPerReq)),
      cpuCoreShare: median(xs.map((x) => x.cpuCoreShare)),
      harnessCoreShare: median(xs.map((x) => x.harnessCoreShare)),
      coreBusy: (xs[0]?.coreBusy ?? []).map((_, i) => median(xs.map((x) => x.coreBusy[i] ?? Number.NaN))),
      redisUsPerReq: present((x) => x.redisUsPerReq),
      perCall: present((x) => x.perCall),
      responses: total,
      statuses,
      errors,
      timeouts,
      unexpectedShare: total > 0 ? unexpected / total : 0,
      rounds: xs,
    };
  };
  const results = throughput.map((s) => describe(s, samples.get(s.id)!));
  const byId = new Map(results.map((r) => [r.id, r]));
  /** Why a scenario's req/s says nothing about its SUT (bench/lib/saturation.ts), or null. */
  const throughputLimit = (x: (typeof results)[number]) =>
    heldBack(
      { sut: x.cpuCoreShare, harness: x.harnessCoreShare, coreBusy: x.coreBusy },
      pinning
        ? {
            // direct's SUT, the upstream, shares the load generator's core.
            sut: x.target === 'upstream' ? SETTINGS.cores.upstream : SETTINGS.cores.target,
            load: SETTINGS.cores.load,
          }
        : null,
    );

  /** Median over rounds of the per-round ratio: a round's scenarios ran back to back, on the same machine. */
  const ratios = RATIOS.filter((r) => byId.has(r.num) && byId.has(r.den)).map((r) => {
    const a = byId.get(r.num)!;
    const b = byId.get(r.den)!;
    const value = median(a.rounds.map((x, i) => x.rps / b.rounds[i]!.rps));
    // CPU-equivalent: the throughput ratio if both were CPU-bound on the same core.
    const byCpu = a.target !== 'upstream' && b.target !== 'upstream' ? b.cpuUsPerReq / a.cpuUsPerReq : null;
    // A side its SUT did not decide (the load generator's core full, or the SUT's core shared) makes
    // the ratio meaningless, whichever way it leans.
    const reasons = [a, b].flatMap((x) => {
      const why = throughputLimit(x);
      return why === null ? [] : [`${x.id}: ${why}`];
    });
    const verdict = throughputVerdict(value, r.floor, reasons);
    const cpuRatio = CPU_RATIOS.find((c) => c.num === r.num && c.den === r.den);
    const note =
      reasons.length === 0
        ? ''
        : `${reasons.join('; ')}; read ${cpuRatio ? `CPU at ${SETTINGS.rate.overallRate} req/s (${cpuRatio.id})` : '"by CPU"'} instead`;
    return { ...r, value, byCpu, verdict, reasons, note };
  });

  const rateResults = rate.map((s) => {
    const xs = rateSamples.get(s.id)!;
    const direct = rateSamples.get('direct');
    const added = direct ? median(xs.map((x, i) => x.p99 - direct[i]!.p99)) : Number.NaN;
    return {
      ...describe(s, xs),
      rate: SETTINGS.rate.overallRate,
      addedP99Ms: added,
      goalMs: s.id === 'redis-log' ? ADDED_P99_TARGET_MS : undefined,
      met: s.id === 'redis-log' && Number.isFinite(added) ? added <= ADDED_P99_TARGET_MS : null,
    };
  });
  // Below saturation only if the scenario kept the rate: one that fell behind ran at its limit.
  const rateHeld = (x: (typeof rateResults)[number]) => x.rps >= 0.9 * SETTINGS.rate.overallRate;
  const rateById = new Map(rateResults.map((r) => [r.id, r]));
  /** CPU per response at the fixed rate, numerator over denominator: median of the per-round ratios. */
  const cpuRatios = CPU_RATIOS.filter((c) => rateById.has(c.num) && rateById.has(c.den)).map((c) => {
    const a = rateById.get(c.num)!;
    const b = rateById.get(c.den)!;
    const value = median(a.rounds.map((x, i) => x.cpuUsPerReq / b.rounds[i]!.cpuUsPerReq));
    const behind = [a, b].filter((x) => !rateHeld(x)).map((x) => x.id);
    const verdict: Verdict = behind.length > 0 ? 'INVALID' : ceilingVerdict(value, c.ceiling);
    const note =
      behind.length > 0 ? `${behind.join(', ')} fell behind ${SETTINGS.rate.overallRate} req/s` : '';
    return { ...c, value, verdict, note };
  });
  /** Redis server CPU per decision, at the fixed rate and at saturation. */
  const redisDecisions = REDIS_DECISION_SCENARIOS.flatMap((id) =>
    [
      { id, at: `${SETTINGS.rate.overallRate} req/s`, us: rateById.get(id)?.redisUsPerReq },
      { id, at: 'saturation', us: byId.get(id)?.redisUsPerReq },
    ].flatMap((x) =>
      x.us === null || x.us === undefined
        ? []
        : [{ ...x, us: x.us, verdict: ceilingVerdict(x.us, REDIS_US_PER_DECISION_TARGET) }],
    ),
  );

  const seconds = (performance.now() - t0) / 1000;
  const load1 = loadavg()[0]!;
  const flag = (r: (typeof results)[number]) =>
    r.unexpectedShare > 0.005 || r.errors > 0
      ? `! ${Object.entries(r.statuses)
          .map(([k, v]) => `${k}×${v}`)
          .join(' ')}${r.errors ? ` errors×${r.errors}` : ''}`
      : '';
  console.log(
    `\nThroughput (${SETTINGS.connections} connections; medians of ${SETTINGS.rounds} rounds of ${SETTINGS.durationS} s)\n`,
  );
  console.log(
    table(
      [
        '#',
        'scenario',
        'req/s',
        'p50 ms',
        'p99 ms',
        'p99.9 ms',
        'SUT µs/req',
        'SUT core',
        'load+up core',
        'cores busy',
        'Redis µs/req',
        'req/call',
        '',
      ],
      results.map((r) => [
        String(r.issue),
        r.label,
        int(r.rps),
        fixed(r.p50Ms),
        fixed(r.p99Ms),
        fixed(r.p999Ms),
        fixed(r.cpuUsPerReq, 1),
        pct(r.cpuCoreShare),
        r.target === 'upstream' ? '' : pct(r.harnessCoreShare),
        r.coreBusy.map(pct).join(' '),
        r.redisUsPerReq === null ? '' : fixed(r.redisUsPerReq, 1),
        r.perCall === null ? '' : fixed(r.perCall, 1),
        [flag(r), throughputLimit(r) ?? ''].filter((x) => x !== '').join('; '),
      ]),
      ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
  );
  console.log(
    '\nSUT = the system under test (floodgate, nginx; the upstream itself for direct), SUT µs/req its CPU time per response, SUT core\n' +
      'its share of one core; load+up = the load generator and upstream, which share the other core; cores busy = each core\n' +
      'over the run, whoever used it. A SUT well below 100% with its core busy was short of CPU; with a core idle, it waited.\n' +
      "Redis µs/req = the Redis server's CPU per response; req/call = responses per script call (decisions batched per call).\n" +
      'The last column names what held a scenario back when it was not its SUT: its req/s then measured something else.',
  );
  if (ratios.length > 0) {
    console.log(
      '\nRatios (req/s, median of per-round ratios; "by CPU" = inverse ratio of CPU µs per request)\n',
    );
    console.log(
      table(
        ['ratio', 'req/s', 'by CPU', 'target', '', 'note'],
        ratios.map((r) => [
          r.label,
          fixed(r.value),
          r.byCpu === null ? '' : fixed(r.byCpu),
          r.floor === undefined ? '' : `≥ ${r.floor.toFixed(2)}`,
          r.verdict,
          r.note,
        ]),
        ['l', 'r', 'r', 'r', 'l', 'l'],
      ),
    );
    if (ratios.some((r) => r.verdict === 'INVALID'))
      console.log(
        `\nINVALID: the load generator's core was saturated (load+up core or that core's busy share ≥ ${pct(SATURATED)}),\n` +
          `or the SUT was starved (its core ≥ ${pct(SATURATED)} busy, ≥ ${pct(1 - SATURATED)} of it used by others), on one side of the\n` +
          'ratio: the req/s did not measure the SUT. Read the CPU per response at the fixed rate (below) instead.',
      );
  }
  if (rateResults.length > 0) {
    console.log(
      `\nFixed rate: autocannon -R ${SETTINGS.rate.overallRate}, ${SETTINGS.rate.connections} connections (medians of ${SETTINGS.rate.rounds} rounds of ${SETTINGS.rate.durationS} s)\n`,
    );
    console.log(
      table(
        ['scenario', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', '+p99 vs direct', 'target', ''],
        rateResults.map((r) => [
          r.label,
          int(r.rps),
          fixed(r.p50Ms),
          fixed(r.p99Ms),
          fixed(r.p999Ms),
          r.id === 'direct' ? '' : signedMs(r.addedP99Ms),
          r.goalMs === undefined ? '' : `≤ +${r.goalMs} ms`,
          r.met === null ? '' : r.met ? 'met' : 'MISSED',
        ]),
      ),
    );
    console.log(
      `\nCPU per response at the fixed rate (SUT's own CPU; Redis µs/decision = the Redis server's, per response)\n`,
    );
    console.log(
      table(
        ['scenario', 'req/s', 'SUT µs/resp', 'SUT core', 'Redis µs/decision', ''],
        rateResults.map((r) => [
          r.label,
          int(r.rps),
          fixed(r.cpuUsPerReq, 1),
          pct(r.cpuCoreShare),
          r.redisUsPerReq === null ? '' : fixed(r.redisUsPerReq, 1),
          rateHeld(r) ? '' : `! fell behind ${SETTINGS.rate.overallRate} req/s`,
        ]),
        ['l', 'r', 'r', 'r', 'r', 'l'],
      ),
    );
    if (cpuRatios.length > 0 || redisDecisions.length > 0) {
      console.log(
        `\nCPU targets at ${SETTINGS.rate.overallRate} req/s (ratios: median of per-round ratios of SUT µs/resp)\n`,
      );
      console.log(
        table(
          ['target', 'goal', 'measured', '', 'note'],
          [
            ...cpuRatios.map((c) => [
              c.label,
              c.ceiling === undefined ? 'report' : `≤ ${fixed(c.ceiling)}×`,
              `${fixed(c.value)}×`,
              c.verdict,
              c.note,
            ]),
            ...redisDecisions.map((d) => [
              `Redis CPU per decision, ${d.id}, at ${d.at}`,
              `≤ ${REDIS_US_PER_DECISION_TARGET} µs`,
              `${fixed(d.us, 1)} µs`,
              d.verdict,
              '',
            ]),
          ],
          ['l', 'r', 'r', 'l', 'l'],
        ),
      );
    }
    if (redisRtt)
      console.log(
        `\nRedis's own round trip at the same rate (PING from the benchmark process): p50 ${fixed(redisRtt.p50)} ms, ` +
          `p99 ${fixed(redisRtt.p99)} ms.\nEvery Redis-limited request waits for one such round trip: latency the proxy does not control.`,
      );
  }
  if (multi) printMultiCore(multi);
  for (const x of skipped) console.log(`SKIPPED ${x.id}: ${x.reason}`);
  for (const [id, n] of Object.entries(storeErrors))
    if (n > 0) console.log(`! ${id}: ${n} Redis store errors during the run`);
  console.log(
    `\nload average: ${load0.toFixed(2)} at start, ${load1.toFixed(2)} at end${load1 > 0.5 || load0 > 0.5 ? ' — a busy machine: re-measure on a quiet one for absolute figures' : ''}; ${seconds.toFixed(0)} s`,
  );

  let profiles: Record<string, string> | undefined;
  if (argv.profile) {
    profiles = {};
    for (const f of readdirSync(profileDir).filter((f) => f.endsWith(`-${RUN_ID}.cpuprofile`))) {
      const profile = JSON.parse(readFileSync(`${profileDir}/${f}`, 'utf8'));
      const summary = summarizeProfile(profile, 30, profileSkipMs);
      const out = `${profileDir}/${f.replace(/\.cpuprofile$/, '.txt')}`;
      writeFileSync(out, summary);
      profiles[f] = out;
      console.log(`\nprofile ${f} (after warm-up; top self time, idle excluded)\n${summary}`);
    }
  }

  // A partial run (--scenario, --only) keeps the full run's macro.json, which the chart and README use.
  const resultName = argv.scenario
    ? `macro-${argv.scenario}.json`
    : argv.only
      ? 'macro-only.json'
      : 'macro.json';
  const written = writeResult(resultName, {
    at: new Date().toISOString(),
    quick: QUICK,
    profiling: argv.profile,
    machine: { ...machine(), loadavgStart: load0, loadavgEnd: load1, pinned: pinning },
    settings: { ...SETTINGS, keys: KEY_COUNT },
    seconds,
    skipped,
    saturatedAt: SATURATED,
    scenarios: results.map((r) => ({ ...r, heldBack: throughputLimit(r) })),
    ratios,
    fixedRate: rateResults,
    cpuRatios,
    redisDecisions,
    multiCore: multi,
    redisRoundTripMs: redisRtt,
    storeErrors,
    ...(profiles ? { profiles } : {}),
    workDir: process.env.BENCH_KEEP_TMP ? tempDir() : undefined,
  });
  console.log(`wrote ${written}`);
}

await main();
process.exit(0);
