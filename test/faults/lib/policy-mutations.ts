// Broken variants of a policy file, made programmatically from its text: each mutation edits the YAML
// document (comments and layout kept) or its raw text, and says where the error belongs, so a test can
// check that the reported FILE:LINE:COL points at the offending key or value and not merely somewhere.
import { isMap, LineCounter, type Node, parseDocument, type Document as YamlDocument } from 'yaml';

type Path = (string | number)[];

export interface Variant {
  /** kebab-case, unique. */
  name: string;
  text: string;
  /** 1-based lines the error may be reported on (the offending node's lines). */
  lines: [number, number];
}

interface DocMutation {
  name: string;
  edit: (doc: YamlDocument) => void;
  /** The node to blame after the edit; `key` blames the key of the pair at `at` (a missing child). */
  at: Path;
  key?: boolean;
}

interface TextMutation {
  name: string;
  /** Returns the new text and the (1-based) line the break is on. */
  edit: (text: string) => { text: string; line: number };
}

const set = (path: Path, value: unknown) => (doc: YamlDocument) => doc.setIn(path, value);
const del = (path: Path) => (doc: YamlDocument) => doc.deleteIn(path);

const T0 = ['routes', 0];
const L0 = [...T0, 'limits'];
const UP = ['upstreams', 'transcriber'];
const BR = [...UP, 'breaker'];

/** Edits of the document, each breaking exactly one rule. */
const DOC_MUTATIONS: DocMutation[] = [
  // unknown keys, at every level
  { name: 'unknown-top-level-key', edit: set(['rate_limits'], 1), at: ['rate_limits'], key: true },
  { name: 'unknown-admin-key', edit: set(['admin', 'port'], 9090), at: ['admin', 'port'], key: true },
  { name: 'unknown-store-key', edit: set(['store', 'tiemout'], '50ms'), at: ['store', 'tiemout'], key: true },
  { name: 'unknown-upstream-key', edit: set([...UP, 'retries'], 3), at: [...UP, 'retries'], key: true },
  {
    name: 'unknown-breaker-key',
    edit: set([...BR, 'half_open_calls'], 3),
    at: [...BR, 'half_open_calls'],
    key: true,
  },
  { name: 'unknown-route-key', edit: set([...T0, 'rate'], 10), at: [...T0, 'rate'], key: true },
  { name: 'unknown-limits-key', edit: set([...L0, 'burst'], 10), at: [...L0, 'burst'], key: true },
  {
    name: 'unknown-match-key',
    edit: set(['routes', 1, 'match', 'prefix'], true),
    at: ['routes', 1, 'match', 'prefix'],
    key: true,
  },
  // wrong types
  { name: 'version-text', edit: set(['version'], 'one'), at: ['version'] },
  { name: 'version-2', edit: set(['version'], 2), at: ['version'] },
  { name: 'listen-number', edit: set(['listen'], 8080), at: ['listen'] },
  { name: 'hourly-text', edit: set([...L0, 'hourly'], 'many'), at: [...L0, 'hourly'] },
  { name: 'shadow-text', edit: set([...L0, 'shadow'], 'sometimes'), at: [...L0, 'shadow'] },
  {
    name: 'failure-threshold-zero',
    edit: set([...BR, 'failure_threshold'], 0),
    at: [...BR, 'failure_threshold'],
  },
  {
    name: 'failure-status-200',
    edit: set([...BR, 'failure_statuses'], [502, 200]),
    at: [...BR, 'failure_statuses', 1],
  },
  {
    name: 'methods-not-a-list',
    edit: set([...T0, 'match', 'methods'], 'POST'),
    at: [...T0, 'match', 'methods'],
  },
  {
    name: 'trusted-proxies-not-a-list',
    edit: set(['client_ip', 'trusted_proxies'], '127.0.0.1'),
    at: ['client_ip', 'trusted_proxies'],
  },
  { name: 'routes-a-map', edit: set(['routes'], { transcribe: 1 }), at: ['routes'] },
  { name: 'store-cluster-text', edit: set(['store', 'cluster'], 'yes please'), at: ['store', 'cluster'] },
  // durations and sizes
  { name: 'timeout-without-unit', edit: set(['store', 'timeout'], 50), at: ['store', 'timeout'] },
  { name: 'timeout-unknown-unit', edit: set(['store', 'timeout'], '50 sec'), at: ['store', 'timeout'] },
  { name: 'breaker-timeout-zero', edit: set([...BR, 'timeout'], '0s'), at: [...BR, 'timeout'] },
  {
    name: 'window-per-weeks',
    edit: set([...L0, 'windows', 0, 'per'], '1w'),
    at: [...L0, 'windows', 0, 'per'],
  },
  { name: 'max-body-words', edit: set([...T0, 'max_body'], '200 megabytes'), at: [...T0, 'max_body'] },
  { name: 'max-body-negative', edit: set([...T0, 'max_body'], -5), at: [...T0, 'max_body'] },
  // upstreams
  {
    name: 'unknown-upstream',
    edit: set(['routes', 1, 'upstream'], 'transcribr'),
    at: ['routes', 1, 'upstream'],
  },
  { name: 'upstream-url-missing', edit: del([...UP, 'url']), at: UP, key: true },
  { name: 'route-upstream-missing', edit: del([...T0, 'upstream']), at: T0 },
  { name: 'upstream-url-ftp', edit: set([...UP, 'url'], 'ftp://127.0.0.1:8000'), at: [...UP, 'url'] },
  {
    name: 'upstream-url-with-path',
    edit: set([...UP, 'url'], 'http://127.0.0.1:8000/api'),
    at: [...UP, 'url'],
  },
  // names and windows
  { name: 'duplicate-route-name', edit: set(['routes', 2, 'name'], 'status'), at: ['routes', 2, 'name'] },
  {
    name: 'duplicate-window-name',
    edit: (doc) => doc.addIn([...L0, 'windows'], doc.createNode({ name: 'burst', limit: 20, per: '5m' })),
    at: [...L0, 'windows', 1, 'name'],
  },
  { name: 'daily-below-hourly', edit: set([...L0, 'daily'], 50), at: [...L0, 'daily'] },
  {
    name: 'window-limit-zero',
    edit: set([...L0, 'windows', 0, 'limit'], 0),
    at: [...L0, 'windows', 0, 'limit'],
  },
  { name: 'window-above-hourly', edit: set([...L0, 'windows', 0, 'limit'], 500), at: [...L0, 'hourly'] },
  {
    name: 'window-bad-name',
    edit: set([...L0, 'windows', 0, 'name'], 'burst window!'),
    at: [...L0, 'windows', 0, 'name'],
  },
  { name: 'limits-without-windows', edit: set(['routes', 1, 'limits'], {}), at: ['routes', 1, 'limits'] },
  // addresses, keys, paths, modes
  {
    name: 'cidr-prefix-33',
    edit: set(['client_ip', 'trusted_proxies', 0], '127.0.0.1/33'),
    at: ['client_ip', 'trusted_proxies', 0],
  },
  {
    name: 'cidr-not-an-ip',
    edit: set(['client_ip', 'trusted_proxies', 0], 'localhost'),
    at: ['client_ip', 'trusted_proxies', 0],
  },
  {
    name: 'admin-listen-port-too-big',
    edit: set(['admin', 'listen'], '127.0.0.1:99999'),
    at: ['admin', 'listen'],
  },
  { name: 'on-error-retry', edit: set(['store', 'on_error'], 'retry'), at: ['store', 'on_error'] },
  { name: 'key-header-without-name', edit: set([...L0, 'key'], 'header:'), at: [...L0, 'key'] },
  {
    name: 'path-without-slash',
    edit: set([...T0, 'match', 'path'], 'transcribe'),
    at: [...T0, 'match', 'path'],
  },
  {
    name: 'path-star-inside',
    edit: set(['routes', 1, 'match', 'path'], '/status/*/x'),
    at: ['routes', 1, 'match', 'path'],
  },
  {
    name: 'route-shadowed',
    edit: set(['routes', 2, 'match', 'path'], '/status/*'),
    at: ['routes', 2, 'match'],
  },
  {
    name: 'unset-variable',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the policy's ${VAR} syntax, not a template
    edit: set(['store', 'url'], '${FG_FAULTS_NEVER_SET_4711}'),
    at: ['store', 'url'],
  },
];

/** Breaks in the YAML itself. */
const TEXT_MUTATIONS: TextMutation[] = [
  {
    name: 'yaml-unclosed-flow-map',
    edit: (text) =>
      replaceLine(
        text,
        (l) => l.includes('match: { path: /transcribe'),
        (l) => l.replace(' }', ''),
      ),
  },
  {
    name: 'yaml-unclosed-quote',
    edit: (text) =>
      replaceLine(
        text,
        (l) => /^\s+prefix: "floodgate:"/.test(l),
        (l) => l.replace('floodgate:"', 'floodgate:'),
      ),
  },
  {
    name: 'yaml-tab-indent',
    edit: (text) =>
      replaceLine(
        text,
        (l) => /^\s+timeout: 50ms/.test(l),
        (l) => l.replace(/^\s+/, '\t'),
      ),
  },
  {
    name: 'yaml-duplicate-key',
    edit: (text) =>
      replaceLine(
        text,
        (l) => /^\s+on_error: /.test(l),
        (l) => `${l}\n  on_error: deny`,
        1,
      ),
  },
];

function replaceLine(
  text: string,
  which: (line: string) => boolean,
  change: (line: string) => string,
  blameOffset = 0,
): { text: string; line: number } {
  const lines = text.split('\n');
  const i = lines.findIndex(which);
  if (i === -1) throw new Error('mutation target line not found');
  lines[i] = change(lines[i]!);
  return { text: lines.join('\n'), line: i + 1 + blameOffset };
}

/** The lines the node at `path` spans in `text` (its key's line with `key`). */
function linesOf(text: string, path: Path, key: boolean): [number, number] {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter });
  let node: Node | null = null;
  if (key) {
    const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
    if (!isMap(parent)) throw new Error(`no map at ${path.slice(0, -1).join('.')}`);
    const pair = parent.items.find(
      (p) => String((p.key as { value?: unknown }).value) === String(path.at(-1)),
    );
    node = (pair?.key as Node | undefined) ?? null;
  } else {
    node = (doc.getIn(path, true) as Node | undefined) ?? null;
  }
  if (!node?.range) throw new Error(`no node at ${path.join('.')}`);
  return [
    counter.linePos(node.range[0]).line,
    counter.linePos(Math.max(node.range[0], node.range[1] - 1)).line,
  ];
}

/** Every variant of `base`, in a fixed order. */
export function brokenVariants(base: string): Variant[] {
  const out: Variant[] = [];
  for (const m of DOC_MUTATIONS) {
    const doc = parseDocument(base);
    m.edit(doc);
    const text = doc.toString({ lineWidth: 0 });
    out.push({ name: m.name, text, lines: linesOf(text, m.at, m.key ?? false) });
  }
  for (const m of TEXT_MUTATIONS) {
    const { text, line } = m.edit(base);
    // A parser may notice a break on the line after it (an unclosed quote or map runs on).
    out.push({ name: m.name, text, lines: [line, line + 1] });
  }
  return out;
}

/** The base for the variants: `source` with its listeners on ephemeral ports and its upstream at `upstreamUrl`. */
export function basePolicy(source: string, upstreamUrl: string): string {
  const doc = parseDocument(source);
  doc.setIn(['listen'], '127.0.0.1:0');
  doc.setIn(['admin', 'listen'], '127.0.0.1:0');
  doc.setIn([...UP, 'url'], upstreamUrl);
  return doc.toString({ lineWidth: 0 });
}
