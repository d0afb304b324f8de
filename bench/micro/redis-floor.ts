// What one Redis call costs the Redis server, in CPU µs (INFO cpu), before any limiter logic: PING, a
// no-op script, and each limiter script with the benchmark's windows (hourly + daily). Two regimes:
//   - paced: one call at a time from 2 loops at a fixed rate (1,500 calls/s by default), as a proxy
//     makes them at the macro benchmark's fixed rate, where no two decisions share a turn of its loop;
//   - busy: batches of 16 decisions per call, 8 calls in flight, as fast as Redis answers.
// It is the floor under "Redis CPU per decision" (bench/README.md): at the paced rate, no script can
// cost a call less than PING does there. Other clients of the same Redis count too: run it on a quiet one.
//
//   npx tsx bench/micro/redis-floor.ts [--rate N] [--seconds S]   (REDIS_URL; ~20 s)
//
// Prints a table and writes bench/results/redis-floor.json. Its keys (fgfloor:<run>:*) are deleted at the end.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { projectPath } from '../../core/paths.js';
import { machine, table, writeResult } from '../lib/report.js';

const { values: argv } = parseArgs({
  options: { rate: { type: 'string' }, seconds: { type: 'string' } },
  strict: true,
});
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const RATE = Number(argv.rate ?? 1_500);
const SECONDS = Number(argv.seconds ?? 2);
const PREFIX = `fgfloor:${randomBytes(4).toString('hex')}:`;
const KEYS = 1_000;
const BATCH = 16;
const IN_FLIGHT = 8;
/**
 * ARGV after the keys: hit, server time, then hourly 10^6 and daily 10^7 (nothing is ever refused); each
 * call then adds one cost per key (1).
 */
const TAIL = ['1', '', '3600000', '1000000', '86400000', '10000000'];

const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
const stats = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });

async function redisCpuUs(): Promise<number> {
  const text = await stats.info('cpu');
  const field = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(text)?.[1] ?? Number.NaN);
  return (field('used_cpu_sys') + field('used_cpu_user')) * 1e6;
}

const lua = (name: string) => readFileSync(projectPath('proxy', 'ratelimit', 'lua', `${name}.lua`), 'utf8');
const sha = async (source: string) => (await redis.script('LOAD', source)) as string;

interface Kind {
  readonly name: string;
  /** One call deciding `n` identities, starting at identity `i`. */
  call(i: number, n: number): Promise<unknown>;
}

async function kinds(): Promise<Kind[]> {
  const nop = await sha('return 1');
  const script = async (name: string, suffix: string): Promise<Kind> => {
    const s = await sha(lua(name));
    return {
      name: `${name}.lua`,
      call: (i, n) => {
        const keys: string[] = [];
        for (let k = 0; k < n; k++) keys.push(`${PREFIX}{k${(i + k) % KEYS}}${suffix}`);
        return redis.evalsha(s, n, ...keys, ...TAIL, ...keys.map(() => '1'));
      },
    };
  };
  return [
    { name: 'PING', call: () => redis.ping() },
    { name: 'no-op script', call: () => redis.evalsha(nop, 0) },
    await script('sliding-counter', ':s'),
    await script('sliding-log', ':log'),
  ];
}

/** Redis CPU µs per call and per decision, and calls/s, over one run of `loop`. */
async function measure(run: () => Promise<{ calls: number; decisions: number }>) {
  const cpu0 = await redisCpuUs();
  const t0 = performance.now();
  const { calls, decisions } = await run();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = (await redisCpuUs()) - cpu0;
  return { usPerCall: cpu / calls, usPerDecision: cpu / decisions, decisionsPerSecond: decisions / seconds };
}

function paced(kind: Kind) {
  return measure(async () => {
    const total = Math.round(RATE * SECONDS);
    const t0 = performance.now();
    let next = 0;
    const loop = async () => {
      while (next < total) {
        const i = next++;
        const wait = t0 + (i / RATE) * 1000 - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        await kind.call(i, 1);
      }
    };
    await Promise.all([loop(), loop()]);
    return { calls: total, decisions: total };
  });
}

function busy(kind: Kind) {
  return measure(async () => {
    const deadline = performance.now() + SECONDS * 1000;
    let calls = 0;
    const loop = async () => {
      while (performance.now() < deadline) await kind.call(BATCH * calls++, BATCH);
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, loop));
    return { calls, decisions: calls * BATCH };
  });
}

async function main(): Promise<void> {
  const rows: Record<string, unknown>[] = [];
  for (const kind of await kinds()) {
    await busy(kind); // warm-up: scripts cached, keys created
    const p = await paced(kind);
    const b = kind.name.endsWith('.lua') ? await busy(kind) : null;
    rows.push({ kind: kind.name, paced: p, busy: b });
  }
  const f = (x: number | undefined, d = 1) => (x === undefined ? '' : x.toFixed(d));
  console.log(
    `\nRedis server CPU per call (INFO cpu): paced = ${RATE} calls/s, one decision each, 2 loops; ` +
      `busy = ${BATCH} decisions per call, ${IN_FLIGHT} calls in flight\n`,
  );
  console.log(
    table(
      ['call', 'paced µs/call', `busy µs/decision`, 'busy decisions/s'],
      rows.map((r) => {
        const p = r.paced as { usPerCall: number };
        const b = r.busy as { usPerDecision: number; decisionsPerSecond: number } | null;
        return [
          String(r.kind),
          f(p.usPerCall),
          f(b?.usPerDecision),
          b ? b.decisionsPerSecond.toFixed(0) : '',
        ];
      }),
    ),
  );
  console.log(
    `\nwrote ${writeResult('redis-floor.json', { at: new Date().toISOString(), machine: machine(), rate: RATE, rows })}`,
  );
}

main()
  .finally(async () => {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1_000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
    redis.disconnect();
    stats.disconnect();
  })
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
