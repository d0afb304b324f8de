// config/grafana/floodgate.json: it parses as a Grafana dashboard, covers what an operator needs
// (breaker states, limited rate per route, latency percentiles via histogram_quantile, store errors),
// and every metric it queries is one the proxy registers (read from ProxyMetrics' own registry, with a
// histogram's _bucket/_sum/_count series), filtered or grouped only by labels those metrics carry.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProxyMetrics } from '../../../proxy/observability/metrics.js';
import { PROJECT_ROOT } from '../../helpers/proxy.js';

interface Target {
  expr: string;
  datasource?: { uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { uid: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
  annotations: { list: { expr?: string }[] };
}

const dashboard = JSON.parse(
  readFileSync(join(PROJECT_ROOT, 'config', 'grafana', 'floodgate.json'), 'utf8'),
) as Dashboard;
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = panels.filter((p) => p.type !== 'row');
const exprs = [
  ...queryPanels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  ...dashboard.annotations.list.flatMap((a) => (a.expr ? [a.expr] : [])),
];

/** Series name → label names, from the registry the proxy really uses. */
async function registered(): Promise<Map<string, Set<string>>> {
  const metrics = new ProxyMetrics({ defaultMetrics: false });
  const out = new Map<string, Set<string>>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    const labels = new Set(
      (metrics.registry.getSingleMetric(m.name) as unknown as { labelNames: string[] }).labelNames,
    );
    if (String(m.type) === 'histogram') {
      out.set(`${m.name}_bucket`, new Set([...labels, 'le']));
      out.set(`${m.name}_sum`, labels);
      out.set(`${m.name}_count`, labels);
    } else {
      out.set(m.name, labels);
    }
  }
  return out;
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/** Metric names and the labels each is matched on, plus the labels grouped by, in one PromQL expression. */
function analyse(expr: string): { metrics: Map<string, string[]>; groupedBy: string[] } {
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const metrics = new Map<string, string[]>();
  for (const m of noStrings.matchAll(/([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)) {
    const labels = [...m[2]!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!);
    metrics.set(m[1]!, [...(metrics.get(m[1]!) ?? []), ...labels]);
  }
  const groupedBy = [...noStrings.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)].flatMap((m) =>
    m[1]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  // Bare identifiers that are not functions, keywords, grouping labels, ranges or numbers: metrics.
  const stripped = noStrings
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring)\s*\([^)]*\)/g, ' ');
  for (const m of stripped.matchAll(/(?<![\w$.])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1]!.toLowerCase())) continue;
    if (!metrics.has(m[1]!)) metrics.set(m[1]!, []);
  }
  return { metrics, groupedBy };
}

describe('config/grafana/floodgate.json', () => {
  it('is a Grafana dashboard with unique panel ids, each panel on the datasource variable', () => {
    expect(dashboard.uid).toBe('floodgate');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of queryPanels) {
      expect(p.gridPos.w, p.title).toBeGreaterThan(0);
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
    }
    expect(dashboard.templating.list.map((v) => v.name)).toContain('datasource');
  });

  it('queries only metrics the proxy registers, by labels they carry', async () => {
    const known = await registered();
    const used = new Set<string>();
    for (const expr of exprs) {
      const { metrics, groupedBy } = analyse(expr);
      expect(metrics.size, expr).toBeGreaterThan(0);
      const labelsHere = new Set<string>();
      for (const [name, labels] of metrics) {
        expect([...known.keys()], `${name} in: ${expr}`).toContain(name);
        used.add(name);
        for (const l of labels) expect([...known.get(name)!], `label ${l} of ${name}`).toContain(l);
        for (const l of known.get(name)!) labelsHere.add(l);
      }
      for (const l of groupedBy) expect([...labelsHere], `grouping by ${l} in: ${expr}`).toContain(l);
    }
    for (const v of dashboard.templating.list) {
      if (v.type !== 'query') continue;
      const q = typeof v.query === 'string' ? v.query : v.query.query;
      const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(q)!;
      expect(m, q).not.toBeNull();
      expect([...(known.get(m[1]!) ?? [])], q).toContain(m[2]);
    }
    expect(used.size).toBeGreaterThanOrEqual(6);
  });

  it('shows breaker states, the limited rate per route, latency percentiles and store errors', () => {
    const all = exprs.join('\n');
    expect(all).toMatch(/circuit_breaker_state\b/);
    expect(all).toMatch(/sum by \(endpoint\) \(rate\(rate_limit_hits_total/);
    for (const q of ['0.5', '0.95', '0.99']) {
      expect(all).toContain(
        `histogram_quantile(${q}, sum by (le, route) (rate(proxy_request_duration_seconds_bucket`,
      );
    }
    expect(all).toMatch(/rate\(rate_limit_store_errors_total\[/);
    // The state panel names the states as circuit_breaker_state numbers them (0 CLOSED, 1 OPEN, 2 HALF_OPEN).
    const state = queryPanels.find((p) => p.targets?.some((t) => t.expr.includes('circuit_breaker_state')));
    expect(JSON.stringify(state)).toContain('"0":{"text":"CLOSED"');
    expect(JSON.stringify(state)).toContain('"1":{"text":"OPEN"');
    expect(JSON.stringify(state)).toContain('"2":{"text":"HALF_OPEN"');
  });
});
