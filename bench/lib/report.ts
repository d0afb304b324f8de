// Small helpers shared by the benchmarks: statistics over rounds, table printing, and where results go.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { projectPath } from '../../core/paths.js';

export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Writes bench/results/<name> (gitignored) and returns its project-relative path. */
export function writeResult(name: string, data: unknown): string {
  mkdirSync(projectPath('bench', 'results'), { recursive: true });
  writeFileSync(projectPath('bench', 'results', name), `${JSON.stringify(data, null, 2)}\n`);
  return `bench/results/${name}`;
}

/** What a reader needs to judge absolute figures: they are only comparable within one run. */
export function machine(): { cpus: number; model: string; node: string; loadavg1m: number } {
  const c = cpus();
  return { cpus: c.length, model: c[0]?.model ?? 'unknown', node: process.version, loadavg1m: loadavg()[0]! };
}

export type Align = 'l' | 'r';

/** A plain-text table: header row, a rule, then rows; columns sized to their widest cell. */
export function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align?: readonly Align[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (s: string, i: number) =>
    (align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'l' ? s.padEnd(widths[i]!) : s.padStart(widths[i]!);
  const line = (r: readonly string[]) =>
    r
      .map((s, i) => cell(s, i))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
export const fixed = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : '–');
export const pct = (n: number): string => (Number.isFinite(n) ? `${Math.round(n * 100)}%` : '–');
/** `+1.23 ms` / `-0.40 ms`. */
export const signedMs = (n: number): string =>
  Number.isFinite(n) ? `${n >= 0 ? '+' : '-'}${Math.abs(n).toFixed(2)} ms` : '–';
