// Renders bench/results/macro.json as an SVG bar chart, by hand and without dependencies: req/s, CPU
// time per request and p99 latency per scenario at saturation, then CPU per response and p99 at the
// fixed rate. Writes
// bench/results/macro.svg and bench/macro.svg (the copy kept in git, which the README shows).
//
//   npx tsx bench/chart.ts [path/to/macro.json]
import { readFileSync, writeFileSync } from 'node:fs';
import { projectPath } from '../core/paths.js';

interface ScenarioResult {
  readonly id: string;
  readonly label: string;
  readonly target: string;
  readonly rps: number;
  readonly p99Ms: number;
  readonly cpuUsPerReq?: number;
  readonly addedP99Ms?: number;
  /** Set when the run's req/s measured the load generator or a shared core, not this SUT. */
  readonly heldBack?: string | null;
}

interface MacroJson {
  readonly at: string;
  readonly quick: boolean;
  readonly machine: {
    readonly cpus: number;
    readonly node: string;
    readonly loadavgStart: number;
    readonly loadavgEnd: number;
  };
  readonly settings: {
    readonly connections: number;
    readonly rounds: number;
    readonly durationS: number;
    readonly rate: { readonly overallRate: number };
  };
  readonly scenarios: readonly ScenarioResult[];
  readonly fixedRate: readonly ScenarioResult[];
}

const WIDTH = 960;
const LABEL_W = 330;
const BAR_H = 18;
const GAP = 6;
const VALUE_W = 90;
const PLOT_W = WIDTH - LABEL_W - VALUE_W - 20;

/** Reference processes in grey, floodgate by what it does. */
function colour(s: ScenarioResult): string {
  if (s.target === 'upstream' || s.target === 'nginx' || s.target === 'bare') return '#9aa0a6';
  if (s.id.startsWith('redis')) return '#d9822b';
  if (s.id.startsWith('memory')) return '#2f9e73';
  if (s.id === 'breaker-open' || s.id.startsWith('reject')) return '#8e6cc4';
  return '#3b73c4';
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function panel(
  title: string,
  rows: readonly ScenarioResult[],
  value: (s: ScenarioResult) => number,
  format: (v: number) => string,
  y0: number,
): { svg: string; height: number } {
  const max = Math.max(...rows.map(value).filter(Number.isFinite), 1e-9);
  const parts = [`<text x="20" y="${y0 + 16}" class="h">${esc(title)}</text>`];
  let y = y0 + 28;
  for (const s of rows) {
    const v = value(s);
    const w = Number.isFinite(v) ? Math.max(1, (v / max) * PLOT_W) : 0;
    parts.push(
      `<text x="${LABEL_W - 8}" y="${y + BAR_H - 5}" class="l">${esc(s.label)}</text>`,
      `<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" rx="2" fill="${colour(s)}"/>`,
      `<text x="${(LABEL_W + w + 6).toFixed(1)}" y="${y + BAR_H - 5}" class="v">${esc(format(v))}</text>`,
    );
    y += BAR_H + GAP;
  }
  return { svg: parts.join('\n'), height: y - y0 + 10 };
}

export function renderChart(m: MacroJson): string {
  const int = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a');
  const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)} ms` : 'n/a');
  const busy = Math.max(m.machine.loadavgStart, m.machine.loadavgEnd) > 0.5;
  const subtitle =
    `${m.at.slice(0, 16).replace('T', ' ')} UTC · node ${m.machine.node} · ${m.machine.cpus} cores · ` +
    `${m.settings.connections} connections, median of ${m.settings.rounds} × ${m.settings.durationS} s` +
    (m.quick ? ' · --quick' : '') +
    (busy
      ? ` · busy machine (load ${m.machine.loadavgStart.toFixed(1)}): compare ratios, not absolute figures`
      : '');
  let y = 50;
  const blocks: string[] = [];
  const add = (p: { svg: string; height: number }) => {
    blocks.push(p.svg);
    y += p.height;
  };
  const marked = m.scenarios.map((s) => (s.heldBack ? { ...s, label: `${s.label} *` } : s));
  add(
    panel(
      'Throughput at saturation (req/s, higher is better; * held back by the load generator or a shared core)',
      marked,
      (s) => s.rps,
      int,
      y,
    ),
  );
  add(
    panel(
      'CPU time per request of the system under test (µs, lower is better; direct: the upstream alone)',
      m.scenarios,
      (s) => s.cpuUsPerReq ?? Number.NaN,
      (v) => (Number.isFinite(v) ? `${v.toFixed(1)} µs` : 'n/a'),
      y,
    ),
  );
  add(panel('p99 latency at saturation (lower is better)', m.scenarios, (s) => s.p99Ms, ms, y));
  if (m.fixedRate.length > 0) {
    add(
      panel(
        `CPU time per response at a fixed ${m.settings.rate.overallRate} req/s (µs, lower is better)`,
        m.fixedRate,
        (s) => s.cpuUsPerReq ?? Number.NaN,
        (v) => (Number.isFinite(v) ? `${v.toFixed(1)} µs` : 'n/a'),
        y,
      ),
    );
    add(
      panel(
        `p99 latency at a fixed ${m.settings.rate.overallRate} req/s (autocannon -R)`,
        m.fixedRate,
        (s) => s.p99Ms,
        ms,
        y,
      ),
    );
  }
  const height = y + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="Floodgate macro benchmark">
<style>
  text { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; font-size: 12px; fill: #24292f; }
  .t { font-size: 16px; font-weight: 600; }
  .s { font-size: 11px; fill: #57606a; }
  .h { font-size: 13px; font-weight: 600; }
  .l { text-anchor: end; }
  .v { font-variant-numeric: tabular-nums; }
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="20" y="24" class="t">Floodgate macro benchmark</text>
<text x="20" y="40" class="s">${esc(subtitle)}</text>
${blocks.join('\n')}
</svg>
`;
}

function main(): void {
  const input = process.argv[2] ?? projectPath('bench', 'results', 'macro.json');
  const m = JSON.parse(readFileSync(input, 'utf8')) as MacroJson;
  const svg = renderChart(m);
  writeFileSync(projectPath('bench', 'results', 'macro.svg'), svg);
  writeFileSync(projectPath('bench', 'macro.svg'), svg);
  console.log('wrote bench/results/macro.svg and bench/macro.svg');
}

main();
