// Reads a V8 .cpuprofile (node --cpu-prof) and lists where the busy time went: the functions with the
// most self time, then the share of busy time spent inside each file or package (inclusive). Idle time
// is left out, so the shares describe the work done, whatever the load was.
//
//   npx tsx bench/macro/profile-summary.ts FILE.cpuprofile [N] [SKIP_MS]
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

function where(url: string): string {
  if (url === '') return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) return url.slice(nm + 'node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist !== -1) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, '');
}

/** A package name for node_modules paths, else the file. */
function owner(url: string): string {
  const w = where(url);
  if (url.includes('node_modules/'))
    return w.startsWith('@') ? w.split('/').slice(0, 2).join('/') : w.split('/')[0]!;
  return w || '(native)';
}

/** `skipMs`: leave out the profile's first milliseconds (start-up: loading and compiling modules). */
export function summarizeProfile(p: CpuProfile, top = 30, skipMs = 0): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const timeOf = new Map<number, number>();
  let elapsed = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    const dt = p.timeDeltas[i] ?? 0;
    elapsed += dt;
    if (elapsed > skipMs * 1_000) timeOf.set(id, (timeOf.get(id) ?? 0) + dt);
  }
  let busy = 0;
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, t] of timeOf) {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName;
    if (name === '(idle)') continue;
    busy += t;
    const key = `${name || '(anonymous)'}  ${where(n.callFrame.url)}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + t);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (f.functionName === '(root)') break;
      const o = owner(f.url);
      if (seen.has(o)) continue;
      seen.add(o);
      inclusive.set(o, (inclusive.get(o) ?? 0) + t);
    }
  }
  const pctOf = (t: number) => `${((100 * t) / busy).toFixed(1).padStart(5)}%`;
  const lines = [`busy ${(busy / 1e6).toFixed(2)} s of CPU samples`, '', 'self time:'];
  for (const [k, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pctOf(t)}  ${k}`);
  lines.push('', 'inclusive, by file or package:');
  for (const [k, t] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top))
    lines.push(`${pctOf(t)}  ${k}`);
  return lines.join('\n') + '\n';
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: npx tsx bench/macro/profile-summary.ts FILE.cpuprofile [N] [SKIP_MS]');
    process.exit(2);
  }
  process.stdout.write(
    summarizeProfile(
      JSON.parse(readFileSync(file, 'utf8')) as CpuProfile,
      Number(process.argv[3] ?? 30),
      Number(process.argv[4] ?? 0),
    ),
  );
}
