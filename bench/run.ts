// `npm run bench`: the micro benchmarks, then the macro benchmark, then the chart, then the performance
// targets beside the figures just measured. Each step is its own process (as its own npm script runs
// it), so one step's JIT and heap never colour the next. `--quick` is passed on to every step.
//
//   npx tsx bench/run.ts [--quick] [any other flag is passed to bench/macro/macro.ts]
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { projectPath } from '../core/paths.js';
import { fixed, int, signedMs, table } from './lib/report.js';
import { REDIS_US_PER_DECISION_TARGET } from './macro/scenarios.js';

const passthrough = process.argv.slice(2);
const quick = passthrough.includes('--quick');
let current: ChildProcess | null = null;

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    current?.kill(sig);
    process.exit(130);
  });
}

function step(script: string, args: readonly string[]): Promise<void> {
  console.log(`\n=== ${script} ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', projectPath(...script.split('/')), ...args], {
      cwd: projectPath(),
      stdio: 'inherit',
    });
    current = child;
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      current = null;
      if (code === 0) resolve();
      else reject(new Error(`${script} failed (${code ?? signal})`));
    });
  });
}

function read<T>(name: string): T | null {
  const file = projectPath('bench', 'results', name);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : null;
}

interface Ratio {
  readonly id: string;
  readonly value: number;
  readonly byCpu: number | null;
  /** met, MISSED, or INVALID when the load generator or a shared core decided either side. */
  readonly verdict: string;
  readonly note: string;
}
interface CpuRatio {
  readonly id: string;
  readonly label: string;
  readonly value: number;
  readonly ceiling?: number;
  readonly verdict: string;
  readonly note: string;
}
interface Macro {
  readonly ratios: readonly Ratio[];
  readonly cpuRatios: readonly CpuRatio[];
  readonly redisDecisions: readonly {
    readonly id: string;
    readonly at: string;
    readonly us: number;
    readonly verdict: string;
  }[];
  readonly fixedRate: readonly { readonly id: string; readonly addedP99Ms: number; readonly rate: number }[];
  readonly settings: { readonly rate: { readonly overallRate: number } };
  readonly machine: { readonly loadavgStart: number; readonly loadavgEnd: number };
}
interface Micro {
  readonly results: readonly { readonly name: string; readonly opsPerSecond: number }[];
}
interface Limiter {
  readonly rows: readonly {
    readonly store: string;
    readonly algorithm: string;
    readonly variant: string;
    readonly decisionsPerSecond: number;
  }[];
  readonly memory: readonly { readonly algorithm: string; readonly bytes: number }[];
}

/** The performance targets, each with the figure measured in this run. */
function targets(): void {
  const macro = read<Macro>('macro.json');
  const micro = read<Micro>('micro.json');
  const limiter = read<Limiter>('limiter.json');
  const ratio = (id: string) => macro?.ratios.find((r) => r.id === id);
  const rows: string[][] = [];
  const verdict = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'met' : 'MISSED');
  const rate = macro?.settings.rate.overallRate;
  // CPU per response at the fixed rate: neither the load generator nor a shared core decides it.
  for (const c of macro?.cpuRatios ?? []) {
    rows.push([
      `CPU/response at ${rate} req/s: ${c.label}`,
      c.ceiling === undefined ? 'report' : `≤ ${fixed(c.ceiling)}×`,
      `${fixed(c.value)}×`,
      c.verdict === 'INVALID' ? `INVALID; ${c.note}` : c.verdict,
    ]);
  }
  for (const d of macro?.redisDecisions ?? []) {
    rows.push([
      `Redis CPU per decision, ${d.id}, at ${d.at}`,
      `≤ ${REDIS_US_PER_DECISION_TARGET} µs`,
      `${fixed(d.us, 1)} µs`,
      d.verdict,
    ]);
  }
  // Throughput ratios: met or MISSED only when both sides measured their SUT; INVALID otherwise.
  const ratioRow = (label: string, id: string, floor: number) => {
    const r = ratio(id);
    const byCpu = r?.byCpu == null ? '' : ` (by CPU ${fixed(r.byCpu)})`;
    rows.push([
      label,
      `≥ ${floor.toFixed(2)}`,
      r ? `${fixed(r.value)}${byCpu}` : 'n/a',
      r ? `${r.verdict || 'n/a'}${r.note ? `; ${r.note}` : ''}` : 'n/a',
    ]);
  };
  ratioRow('req/s: redis sliding-log / proxy without limits', 'redis-log/proxy', 0.85);
  ratioRow('req/s: redis sliding-counter / proxy without limits', 'redis-counter/proxy', 0.85);
  ratioRow('req/s: proxy without limits / nginx', 'proxy/nginx', 0.6);
  ratioRow('req/s: redis sliding-log / nginx', 'redis-log/nginx', 0.5);
  ratioRow('req/s: redis sliding-counter / nginx', 'redis-counter/nginx', 0.5);
  const added = macro?.fixedRate.find((r) => r.id === 'redis-log')?.addedP99Ms;
  const nginxAdded = macro?.fixedRate.find((r) => r.id === 'nginx')?.addedP99Ms;
  const fixedRate = macro?.fixedRate[0]?.rate;
  rows.push([
    `added p99 at ${fixedRate === undefined ? 'the fixed rate' : `${fixedRate} req/s`}, redis-limited vs direct`,
    '≤ +1 ms',
    added === undefined ? 'n/a' : `${signedMs(added)} (nginx ${signedMs(nginxAdded ?? Number.NaN)})`,
    verdict(added === undefined ? null : added <= 1),
  ]);
  for (const algorithm of ['sliding-log', 'sliding-counter']) {
    const store = micro?.results.find((r) =>
      r.name.startsWith(`memory store decision, ${algorithm}`),
    )?.opsPerSecond;
    const check = limiter?.rows.find(
      (r) =>
        r.store === 'memory' &&
        r.algorithm === algorithm &&
        r.variant.startsWith('under-limit') &&
        r.variant.endsWith('check'),
    )?.decisionsPerSecond;
    rows.push([
      `memory store decisions/s, ${algorithm}`,
      '≥ 1,000,000',
      `${int(store ?? Number.NaN)} store; ${int(check ?? Number.NaN)} via limiter.check()`,
      verdict(store === undefined ? null : store >= 1e6 && (check === undefined || check >= 1e6)),
    ]);
  }
  const mem = (a: string) => limiter?.memory.find((m) => m.algorithm === a)?.bytes;
  const counter = mem('sliding-counter');
  rows.push([
    'Redis bytes per identity, sliding-counter',
    '≤ 200 B',
    counter === undefined ? 'n/a' : `${int(counter)} B`,
    verdict(counter === undefined ? null : counter <= 200),
  ]);
  const log = mem('sliding-log');
  rows.push([
    'Redis bytes per identity, sliding-log',
    'report',
    log === undefined ? 'n/a' : `${int(log)} B`,
    '',
  ]);
  console.log('\nPerformance targets (every figure from this run; Redis bytes at 100/h + 1000/d)\n');
  console.log(table(['target', 'goal', 'measured', ''], rows, ['l', 'r', 'r', 'l']));
  if (macro && Math.max(macro.machine.loadavgStart, macro.machine.loadavgEnd) > 0.5) {
    console.log(
      '\nThe machine was busy during the macro run: re-measure on a quiet machine before quoting figures.',
    );
  }
}

async function main(): Promise<void> {
  const q = quick ? ['--quick'] : [];
  await step('bench/micro/hot-paths.ts', q);
  await step('bench/micro/limiter.ts', q);
  await step('bench/macro/macro.ts', passthrough);
  await step('bench/chart.ts', []);
  targets();
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
