// Micro benchmark of the limiter's hot path: decisions per second for the memory and Redis stores with
// both algorithms (hourly 100 + daily 1000), Redis with ioredis auto-pipelining on and off, and Redis
// memory per identity at full use. Ratios within one run matter, not absolute numbers (STYLE rule 12).
//
//   npx tsx bench/micro/limiter.ts [--quick]   (REDIS_URL, default redis://127.0.0.1:6379; < 60 s, --quick < 10 s)
//
// Prints a table and writes bench/results/limiter.json.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { ManualClock } from '../../core/clock.js';
import { projectPath } from '../../core/paths.js';
import { RateLimiter } from '../../proxy/ratelimit/limiter.js';
import { MemoryRateLimitStore } from '../../proxy/ratelimit/memory-store.js';
import { RedisRateLimitStore } from '../../proxy/ratelimit/redis-store.js';
import type { Algorithm, WindowSpec } from '../../proxy/ratelimit/store.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const HOUR = 3_600_000;
const DAY = 86_400_000;
const WINDOWS: readonly WindowSpec[] = [
  { name: 'hourly', limit: 100, windowMs: HOUR },
  { name: 'daily', limit: 1_000, windowMs: DAY },
];
const ALGORITHMS: readonly Algorithm[] = ['sliding-log', 'sliding-counter'];
const QUICK = process.argv.includes('--quick');
const MEMORY_RUN_MS = QUICK ? 200 : 1_000;
const REDIS_RUN_MS = QUICK ? 300 : 1_200;
const ROUNDS = QUICK ? 1 : 2;
const IN_FLIGHT = 64;
// Production-like key names ("floodgate:{transcribe:<16>}…"), with a random 10-character scope standing
// in for "transcribe" so a run never touches real counters, and memory figures stay comparable.
const PREFIX = 'floodgate:';
const SCOPE = `b${randomBytes(5).toString('hex').slice(0, 9)}`;

interface Row {
  store: string;
  algorithm: Algorithm;
  variant: string;
  decisionsPerSecond: number;
  allowedShare: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Redis CPU per EVALSHA (INFO commandstats): the script's own cost. */
  serverUsecPerCall?: number;
}

const identities = (n: number) =>
  Array.from({ length: n }, (_, i) => `203.0.${(i >> 8) & 255}.${i & 255}#${i}`);

/**
 * The memory store in-process, two cases:
 * - under-limit: 10,000 identities in turn, each at 90% of its hourly limit (a pinned clock moves 4 ms a
 *   decision), so nearly every decision admits: trim, check and count in both windows;
 * - over-limit: one identity far over its limit, every decision a denial.
 * `hitSync` is the store alone (keys hashed beforehand); `check` is the whole limiter API: key cache,
 * store, promise.
 */
async function memoryRun(algorithm: Algorithm, variant: 'check' | 'hitSync', over: boolean): Promise<Row> {
  const clock = new ManualClock(Math.floor(Date.now() / DAY) * DAY);
  const store = new MemoryRateLimitStore({ clock, maxKeys: 100_000 });
  const limiter = new RateLimiter({ store, windows: WINDOWS, algorithm, scope: SCOPE });
  const ids = identities(over ? 1 : 10_000);
  const keys = ids.map((id) => limiter.keyFor(id));
  const stepMs = over ? 0 : HOUR / 100 / 0.9 / ids.length;
  let n = 0;
  let allowed = 0;
  const started = performance.now();
  const deadline = started + MEMORY_RUN_MS;
  do {
    for (let i = 0; i < 1024; i++, n++) {
      clock.advance(stepMs);
      const ok =
        variant === 'check'
          ? (await limiter.check(ids[n % ids.length]!)).allowed
          : store.hitSync(keys[n % keys.length]!, limiter.windows, algorithm).allowed;
      if (ok) allowed++;
    }
  } while (performance.now() < deadline);
  const seconds = (performance.now() - started) / 1000;
  return {
    store: 'memory',
    algorithm,
    variant: `${over ? 'over-limit, 1 id' : 'under-limit, 10k ids'}, ${variant}`,
    decisionsPerSecond: n / seconds,
    allowedShare: allowed / n,
  };
}

interface RedisSample {
  n: number;
  allowed: number;
  seconds: number;
  latencies: number[];
  evalshaCalls: number;
  evalshaUsec: number;
}

/** EVALSHA calls and server CPU µs so far, from INFO commandstats (deltas give the script's cost). */
async function evalshaStats(admin: Redis): Promise<[number, number]> {
  const line = (await admin.info('commandstats')).split('\n').find((l) => l.startsWith('cmdstat_evalsha:'));
  const m = line && /calls=(\d+),usec=(\d+)/.exec(line);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/** IN_FLIGHT workers, each awaiting one check at a time, over many identities (nearly all admitted). */
async function redisRun(admin: Redis, algorithm: Algorithm, autoPipelining: boolean): Promise<RedisSample> {
  const redis = new Redis(REDIS_URL, { enableAutoPipelining: autoPipelining });
  const limiter = new RateLimiter({
    store: new RedisRateLimitStore({ redis, prefix: PREFIX }),
    windows: WINDOWS,
    algorithm,
    scope: SCOPE,
  });
  const ids = identities(50_000);
  await limiter.check('warm-up'); // loads the script, connects
  const [calls0, usec0] = await evalshaStats(admin);
  let n = 0;
  let allowed = 0;
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + REDIS_RUN_MS;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now();
        const d = await limiter.check(ids[n++ % ids.length]!);
        latencies.push(performance.now() - t);
        if (d.allowed) allowed++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const [calls1, usec1] = await evalshaStats(admin);
  await redis.quit();
  return { n, allowed, seconds, latencies, evalshaCalls: calls1 - calls0, evalshaUsec: usec1 - usec0 };
}

/** Alternates the Redis cases over ROUNDS, so drift on a shared machine spreads evenly, then pools them. */
async function redisRows(admin: Redis): Promise<Row[]> {
  const cases = ALGORITHMS.flatMap((algorithm) => [false, true].map((ap) => ({ algorithm, ap })));
  const samples = cases.map((): RedisSample[] => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, c] of cases.entries()) {
      samples[i]!.push(await redisRun(admin, c.algorithm, c.ap));
      await deleteScope(admin);
    }
  }
  return cases.map((c, i) => {
    const s = samples[i]!;
    const sum = (f: (x: RedisSample) => number) => s.reduce((a, x) => a + f(x), 0);
    const latencies = s.flatMap((x) => x.latencies).sort((a, b) => a - b);
    const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
    return {
      store: 'redis',
      algorithm: c.algorithm,
      variant: `${IN_FLIGHT} in flight, auto-pipelining ${c.ap ? 'on' : 'off'}`,
      decisionsPerSecond: sum((x) => x.n) / sum((x) => x.seconds),
      allowedShare: sum((x) => x.allowed) / sum((x) => x.n),
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      serverUsecPerCall:
        sum((x) => x.evalshaUsec) /
        Math.max(
          1,
          sum((x) => x.evalshaCalls),
        ),
    };
  });
}

interface MemoryFigure {
  algorithm: Algorithm;
  bytes: number;
  keys: { key: string; type: string; encoding: string; entries: number; bytes: number }[];
}

/**
 * Redis memory per identity for 100/h + 1000/d at full use, on a pinned clock (a simulated day or two):
 * sliding-log holds 1000 daily and 100 hourly hits; sliding-counter runs two days at 150 attempts an
 * hour, so both windows' current and previous counts are full; its largest reading is reported.
 */
async function memoryPerIdentity(redis: Redis, algorithm: Algorithm): Promise<MemoryFigure> {
  const clock = new ManualClock(Math.floor(Date.now() / DAY) * DAY - 2 * DAY);
  const store = new RedisRateLimitStore({ redis, prefix: PREFIX, clock });
  const limiter = new RateLimiter({ store, windows: WINDOWS, algorithm, scope: SCOPE });
  const id = 'memory-probe';
  const keys = [store.keyFor(limiter.keyFor(id), algorithm)];
  const measure = async () => {
    const out = [];
    for (const key of keys) {
      const type = await redis.type(key);
      out.push({
        key,
        type,
        encoding: String(await redis.object('ENCODING', key)),
        // A log's hits, or the counter string's integers (3 per window).
        entries: type === 'zset' ? await redis.zcard(key) : String(await redis.get(key)).split(' ').length,
        bytes: Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')),
      });
    }
    return out;
  };
  let admitted = 0;
  let largest: MemoryFigure['keys'] = [];
  const total = (ks: MemoryFigure['keys']) => ks.reduce((s, k) => s + k.bytes, 0);
  if (algorithm === 'sliding-log') {
    // 900 hits over the first 23 hours, then 100 in the last hour: both windows full at the end.
    for (let i = 0; i < 900; i++, clock.advance(92_000)) if (await limiter.isAllowed(id)) admitted++;
    for (let i = 0; i < 100; i++, clock.advance(36_000)) if (await limiter.isAllowed(id)) admitted++;
    if (admitted !== 1_000) throw new Error(`sliding-log fill admitted ${admitted}, not 1000`);
    clock.advance(-36_000);
    largest = await measure();
  } else {
    for (let hour = 0; hour < 48; hour++) {
      for (let i = 0; i < 150; i++, clock.advance(HOUR / 150)) if (await limiter.isAllowed(id)) admitted++;
      const now = await measure();
      if (total(now) >= total(largest)) largest = now;
    }
  }
  await limiter.reset(id);
  return { algorithm, bytes: total(largest), keys: largest };
}

async function deleteScope(redis: Redis): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${PREFIX}{${SCOPE}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const t0 = performance.now();
  const rows: Row[] = [];
  for (const algorithm of ALGORITHMS) {
    for (const [variant, over] of [
      ['hitSync', false],
      ['check', false],
      ['check', true],
    ] as const) {
      await memoryRun(algorithm, variant, over); // warm-up (JIT), then measure
      rows.push(await memoryRun(algorithm, variant, over));
    }
  }
  const admin = new Redis(REDIS_URL);
  try {
    rows.push(...(await redisRows(admin)));
    const memory: MemoryFigure[] = [];
    for (const algorithm of ALGORITHMS) memory.push(await memoryPerIdentity(admin, algorithm));

    console.log(`\nLimiter micro benchmark: hourly 100 + daily 1000 (node ${process.version})\n`);
    console.log(
      `${'store'.padEnd(8)}${'algorithm'.padEnd(17)}${'variant'.padEnd(36)}${'decisions/s'.padStart(13)}${'allowed'.padStart(9)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'Redis µs/call'.padStart(15)}`,
    );
    for (const r of rows) {
      console.log(
        `${r.store.padEnd(8)}${r.algorithm.padEnd(17)}${r.variant.padEnd(36)}${fmt(r.decisionsPerSecond).padStart(13)}${`${Math.round(r.allowedShare * 100)}%`.padStart(9)}${(r.p50Ms?.toFixed(2) ?? '').padStart(9)}${(r.p99Ms?.toFixed(2) ?? '').padStart(9)}${(r.serverUsecPerCall?.toFixed(1) ?? '').padStart(15)}`,
      );
    }
    console.log('\nRedis memory per identity at full use (MEMORY USAGE … SAMPLES 0, summed over its keys)');
    for (const m of memory) {
      const detail = m.keys
        .map((k) => `${k.type}/${k.encoding} ${k.entries} entries ${fmt(k.bytes)} B`)
        .join('; ');
      console.log(`  ${m.algorithm.padEnd(17)}${`${fmt(m.bytes)} B`.padStart(10)}   (${detail})`);
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(`\n${seconds.toFixed(1)} s`);
    const out = projectPath('bench', 'results');
    mkdirSync(out, { recursive: true });
    writeFileSync(
      projectPath('bench', 'results', 'limiter.json'),
      `${JSON.stringify({ at: new Date().toISOString(), quick: QUICK, node: process.version, windows: WINDOWS, rows, memory, seconds }, null, 2)}\n`,
    );
    console.log('wrote bench/results/limiter.json');
  } finally {
    await deleteScope(admin);
    await admin.quit();
  }
}

await main();
