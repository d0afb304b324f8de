// The multi-core scenario: nginx with 1, 2 and 4 workers, and floodgate, each pinned to as many cores
// of their own, with the upstream and the load generator on further cores so that neither caps the
// proxy. It reports how nginx scales and floodgate / nginx at equal cores. Run by macro.ts after the
// 2-core scenarios, and only on a machine with MIN_CORES cores or more; elsewhere it says why not.
//
// Floodgate runs with `workers` 1, 2 and 4 (a primary and that many workers, on the same cores): the
// scaling goal is workers 4 / workers 1 ≥ SCALING_GOAL. CPU time counts the primary and its workers.
import { fixed, int, median, pct, table } from '../lib/report.js';
import { SATURATED, type Verdict } from '../lib/saturation.js';
import {
  type Cores,
  coreBusy,
  coreTimes,
  cpuSeconds,
  type LoadGenerator,
  startLoadGenerator,
  startNginx,
  startStaticNginx,
  stopChild,
  type Target,
} from './processes.js';

export const WORKERS = [1, 2, 4] as const;
/** floodgate's req/s with 4 workers over 1 worker that the scaling should reach. */
export const SCALING_GOAL = 3.2;
/** Cores for the widest proxy, at least one for the upstream and three for the load generator. */
export const MIN_CORES = Math.max(...WORKERS) + 1 + 3;

export interface Layout {
  /** The proxy under test with w workers runs on the first w of these. */
  readonly sut: readonly number[];
  readonly upstream: readonly number[];
  /** One load generator process per core. */
  readonly load: readonly number[];
}

/** Which cores each part gets on a machine with `cores` cores, or why the scenario cannot run there. */
export function multiCoreLayout(cores: number): Layout | { readonly skip: string } {
  if (cores < MIN_CORES) {
    return {
      skip:
        `needs ${MIN_CORES} cores (${Math.max(...WORKERS)} for the proxies' workers, 1 for the upstream, 3 for ` +
        `the load generator, each on cores of its own); this machine has ${cores}`,
    };
  }
  const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
  const sut = Math.max(...WORKERS);
  // The static upstream costs well under half of what proxying costs per request; the load generator
  // about as much as the proxy. So a quarter of the spare cores for the upstream, the rest for load,
  // up to twice the proxy's cores each: more would only add connections, not load.
  const upstream = Math.min(2 * sut, Math.max(1, Math.floor((cores - sut) / 4)));
  const load = Math.min(2 * sut, cores - sut - upstream);
  return { sut: range(0, sut), upstream: range(sut, upstream), load: range(sut + upstream, load) };
}

export interface MultiCoreOptions {
  readonly cores: number;
  readonly nginx: string | null;
  readonly pinning: boolean;
  readonly rounds: number;
  readonly durationS: number;
  readonly warmupS: number;
  /** Per load generator process. */
  readonly connections: number;
  readonly headerSets: readonly Record<string, string>[];
  /** Starts floodgate with `workers` (no limits on `path`) in front of the given upstream, on the given cores. */
  readonly floodgate: (
    upstreamPort: number,
    cores: Cores,
    workers: number,
  ) => Promise<{ target: Target; path: string }>;
}

export interface MultiCoreRow {
  readonly id: string;
  readonly label: string;
  readonly workers: number;
  readonly rps: number;
  readonly cpuUsPerReq: number;
  /** Median over rounds of the busiest core in each group. */
  readonly sutBusy: number;
  readonly loadBusy: number;
  readonly upstreamBusy: number;
  /** Why its req/s says nothing about the proxy (a saturated load generator or upstream), if so. */
  readonly heldBack: string | null;
  readonly rounds: readonly { readonly rps: number; readonly cpuUsPerReq: number }[];
}

export interface MultiCoreRatio {
  readonly workers: number;
  readonly value: number;
  readonly byCpu: number;
  readonly verdict: Verdict;
  readonly note: string;
}

export type MultiCoreResult =
  | { readonly skipped: string }
  | {
      readonly layout: Layout;
      readonly rows: readonly MultiCoreRow[];
      /** req/s over the same system's 1 worker. */
      readonly scaling: readonly {
        readonly workers: number;
        readonly nginx: number;
        readonly floodgate: number;
      }[];
      readonly ratios: readonly MultiCoreRatio[];
    };

export async function runMultiCore(o: MultiCoreOptions): Promise<MultiCoreResult> {
  const layout = multiCoreLayout(o.cores);
  if ('skip' in layout) return { skipped: layout.skip };
  if (!o.pinning)
    return { skipped: 'taskset is missing, and the scenario needs each part on cores of its own' };
  if (o.nginx === null)
    return { skipped: 'nginx is missing (it is both the reference and the upstream here)' };
  const list = (cores: readonly number[]) => cores.join(',');

  const upstream = await startStaticNginx(o.nginx, {
    name: 'mc-upstream',
    core: list(layout.upstream),
    workers: layout.upstream.length,
  });
  const upstreamPort = Number(new URL(upstream.url).port);
  const suts: { id: string; label: string; workers: number; target: Target; path: string }[] = [];
  for (const w of WORKERS) {
    const target = await startNginx(o.nginx, upstreamPort, {
      name: `mc-nginx-${w}`,
      core: list(layout.sut.slice(0, w)),
      workers: w,
    });
    suts.push({
      id: `nginx-${w}`,
      label: `nginx, ${w} worker${w > 1 ? 's' : ''}`,
      workers: w,
      target,
      path: '/plain',
    });
  }
  for (const w of WORKERS) {
    const fg = await o.floodgate(upstreamPort, list(layout.sut.slice(0, w)), w);
    suts.push({
      id: `floodgate-${w}`,
      label: `floodgate, workers: ${w}`,
      workers: w,
      target: fg.target,
      path: fg.path,
    });
  }
  const gens: LoadGenerator[] = layout.load.map((core) => startLoadGenerator(core));

  const once = async (s: (typeof suts)[number], durationS: number) => {
    const job = {
      url: s.target.url + s.path,
      connections: o.connections,
      durationS,
      headerSets: o.headerSets,
    };
    const c0 = cpuSeconds(s.target.child.pid);
    const k0 = coreTimes();
    const results = await Promise.all(gens.map((g) => g.run(job)));
    const k1 = coreTimes();
    const c1 = cpuSeconds(s.target.child.pid);
    const busy = coreBusy(k0, k1);
    const most = (cores: readonly number[]) => Math.max(...cores.map((c) => busy[c] ?? Number.NaN));
    const responses = results.reduce((a, r) => a + r.responses, 0);
    return {
      rps: results.reduce((a, r) => a + r.rps, 0),
      cpuUsPerReq: c0 !== null && c1 !== null ? ((c1 - c0) * 1e6) / responses : Number.NaN,
      sutBusy: most(layout.sut.slice(0, s.workers)),
      loadBusy: most(layout.load),
      upstreamBusy: most(layout.upstream),
    };
  };
  type Run = Awaited<ReturnType<typeof once>>;

  for (const s of suts) await once(s, o.warmupS);
  const samples = new Map<string, Run[]>(suts.map((s) => [s.id, []]));
  for (let round = 0; round < o.rounds; round++) {
    for (const s of suts) samples.get(s.id)!.push(await once(s, o.durationS));
  }
  await Promise.all([upstream, ...suts.map((s) => s.target)].map((t) => stopChild(t.child)));
  await Promise.all(gens.map((g) => stopChild(g.child)));

  const rows: MultiCoreRow[] = suts.map((s) => {
    const xs = samples.get(s.id)!;
    const m = (f: (x: Run) => number) => median(xs.map(f));
    const loadBusy = m((x) => x.loadBusy);
    const upstreamBusy = m((x) => x.upstreamBusy);
    return {
      id: s.id,
      label: s.label,
      workers: s.workers,
      rps: m((x) => x.rps),
      cpuUsPerReq: m((x) => x.cpuUsPerReq),
      sutBusy: m((x) => x.sutBusy),
      loadBusy,
      upstreamBusy,
      heldBack:
        loadBusy >= SATURATED
          ? 'load generator saturated'
          : upstreamBusy >= SATURATED
            ? 'upstream saturated'
            : null,
      rounds: xs.map((x) => ({ rps: x.rps, cpuUsPerReq: x.cpuUsPerReq })),
    };
  });
  const row = (id: string) => rows.find((r) => r.id === id)!;
  const perRound = (a: MultiCoreRow, b: MultiCoreRow) =>
    median(a.rounds.map((x, i) => x.rps / b.rounds[i]!.rps));
  const scaling = WORKERS.map((w) => ({
    workers: w,
    nginx: perRound(row(`nginx-${w}`), row('nginx-1')),
    floodgate: perRound(row(`floodgate-${w}`), row('floodgate-1')),
  }));
  const ratios: MultiCoreRatio[] = WORKERS.map((w) => {
    const nginx = row(`nginx-${w}`);
    const fgRow = row(`floodgate-${w}`);
    const reasons = [fgRow, nginx].filter((r) => r.heldBack !== null).map((r) => `${r.id}: ${r.heldBack}`);
    return {
      workers: w,
      value: perRound(fgRow, nginx),
      byCpu: nginx.cpuUsPerReq / fgRow.cpuUsPerReq,
      verdict: reasons.length > 0 ? 'INVALID' : '',
      note: reasons.length > 0 ? `${reasons.join('; ')}: read "by CPU"` : '',
    };
  });
  return { layout, rows, scaling, ratios };
}

export function printMultiCore(r: MultiCoreResult): void {
  if ('skipped' in r) {
    console.log(`\nSKIPPED multi-core (nginx 1/2/4 workers against floodgate): ${r.skipped}`);
    return;
  }
  const { layout } = r;
  console.log(
    `\nMulti-core: proxies on cores ${layout.sut.join(',')}, upstream (static nginx) on ${layout.upstream.join(',')}, ` +
      `one load generator on each of ${layout.load.join(',')}\n`,
  );
  console.log(
    table(
      ['scenario', 'req/s', 'SUT µs/req', 'SUT cores busy', 'load cores', 'upstream cores', ''],
      r.rows.map((x) => [
        x.label,
        int(x.rps),
        fixed(x.cpuUsPerReq, 1),
        pct(x.sutBusy),
        pct(x.loadBusy),
        pct(x.upstreamBusy),
        x.heldBack === null ? '' : `INVALID: ${x.heldBack}`,
      ]),
      ['l', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
  );
  const top = r.scaling.at(-1)!;
  // A held-back run (saturated load generator or upstream) says nothing about how floodgate scales.
  const held = r.rows.some((x) => x.id.startsWith('floodgate-') && x.heldBack !== null);
  const verdict = held
    ? 'INVALID: a floodgate run was held back'
    : top.floodgate >= SCALING_GOAL
      ? 'met'
      : 'missed';
  console.log(
    `\nscaling (req/s over 1 worker): nginx ${r.scaling.map((s) => `${s.workers}: ${fixed(s.nginx)}`).join(', ')}; ` +
      `floodgate ${r.scaling.map((s) => `${s.workers}: ${fixed(s.floodgate)}`).join(', ')} ` +
      `(goal: workers ${top.workers} / workers 1 ≥ ${SCALING_GOAL}: ${verdict})`,
  );
  console.log('\nfloodgate / nginx at equal cores (req/s; "by CPU" = inverse ratio of CPU µs per request)\n');
  console.log(
    table(
      ['cores', 'req/s', 'by CPU', '', 'note'],
      r.ratios.map((x) => [String(x.workers), fixed(x.value), fixed(x.byCpu), x.verdict, x.note]),
      ['r', 'r', 'r', 'l', 'l'],
    ),
  );
}
