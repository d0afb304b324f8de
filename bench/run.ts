// `npm run bench`: the micro benchmarks, then the macro benchmark, then the chart, then the performance
// targets beside the figures just measured. Each step is its own process (as its own npm script runs
// it), so one step's JIT and heap never colour the next. `--quick` is passed on to every step.
//
//   npx tsx bench/run.ts [--quick] [any other flag is passed to bench/macro/macro.ts]
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { projectPath } from '../core/paths.js';
import { fixed, int, signedMs, table } from './lib/report.js';

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
  readonly note: string;
}
interface Macro {
  readonly ratios: readonly Ratio[];
  readonly fixedRate: readonly { readonly id: string; readonly addedP99Ms: number }[];
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

/** Issue 7's targets, each with the figure measured in this run. */
function targets(): void {
  const macro = read<Macro>('macro.json');
  const micro = read<Micro>('micro.json');
  const limiter = read<Limiter>('limiter.json');
  const ratio = (id: string) => macro?.ratios.find((r) => r.id === id);
  const rows: string[][] = [];
  const verdict = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'met' : 'MISSED');
  const ratioRow = (label: string, id: string, floor: number) => {
    const r = ratio(id);
    rows.push([
      label,
      `≥ ${floor.toFixed(2)}`,
      r ? `${fixed(r.value)}${r.byCpu === null ? '' : ` (by CPU ${fixed(r.byCpu)})`}` : 'n/a',
      `${verdict(r ? r.value >= floor : null)}${r?.byCpu != null ? ` (by CPU: ${verdict(r.byCpu >= floor)})` : ''}${r?.note ? `; ${r.note}` : ''}`,
    ]);
  };
  ratioRow('redis sliding-log / proxy without limits', 'redis-log/proxy', 0.85);
  ratioRow('redis sliding-counter / proxy without limits', 'redis-counter/proxy', 0.85);
  ratioRow('proxy without limits / nginx', 'proxy/nginx', 0.6);
  ratioRow('redis sliding-log / nginx', 'redis-log/nginx', 0.5);
  ratioRow('redis sliding-counter / nginx', 'redis-counter/nginx', 0.5);
  const added = macro?.fixedRate.find((r) => r.id === 'redis-log')?.addedP99Ms;
  const nginxAdded = macro?.fixedRate.find((r) => r.id === 'nginx')?.addedP99Ms;
  rows.push([
    'added p99 at 1000 req/s, redis-limited vs direct',
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
  console.log('\nIssue 7 targets (100/h + 1000/d; ratios are req/s in one run)\n');
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
