// YAML text → validated, frozen policy, or a list of `FILE:LINE:COL: message` errors.
// Positions come from the YAML nodes: the schema reports paths, and each path is walked back to its node.
//
// A policy file is untrusted input as much as a request is: a reload runs on the proxy's event loop, and
// its errors go to the log and to whoever called /admin/reload. So loading is linear in the file's size,
// the size is capped, the errors are capped, and an error quotes at most the one offending token (a file
// that is not a policy at all, such as a symlink to /etc/shadow, is not echoed line by line), and never
// the value of an environment variable.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  parseDocument,
  Scalar,
  visit,
  type YAMLMap,
} from 'yaml';
import type { z } from 'zod';
import { redactUrl } from '../../core/redact-url.js';
import { describeValue } from '../../core/units.js';
import { POLICY_KEYS, type Policy, type Route, validatePolicyData } from './schema.js';
import { stableStringify } from './section-hash.js';

/** Far beyond any real policy (config/proxy.yaml is 3 KB), and parsed in well under a second. */
export const MAX_POLICY_BYTES = 1024 * 1024;
/** Errors reported per file; the rest are counted on one last line. */
export const MAX_ERRORS = 20;

export type LoadResult =
  | { readonly ok: true; readonly policy: Policy; readonly hash: string }
  | { readonly ok: false; readonly errors: readonly string[] };

type Env = Readonly<Record<string, string | undefined>>;
type Path = readonly PropertyKey[];

interface Problem {
  offset: number;
  message: string;
}

/**
 * Reads and parses a policy file. A file that cannot be read, is not a regular file, or is larger than
 * MAX_POLICY_BYTES is one error at 1:1; no more than MAX_POLICY_BYTES + 1 bytes are ever read.
 */
export async function loadPolicyFile(file: string, env: Env = process.env): Promise<LoadResult> {
  const failed = (reason: string): LoadResult => ({ ok: false, errors: [`${file}:1:1: ${reason}`] });
  let text: string;
  try {
    // Non-blocking: a FIFO then fails the regular-file check at once instead of hanging the open.
    const handle = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) return failed('cannot read policy file (not a regular file)');
      if (stat.size > MAX_POLICY_BYTES) return failed(TOO_LARGE);
      // The file may grow between stat and read: room for one byte past the cap tells.
      const buf = Buffer.alloc(Math.min(stat.size, MAX_POLICY_BYTES) + 1);
      let length = 0;
      while (length < buf.length) {
        const { bytesRead } = await handle.read(buf, length, buf.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
      if (length > MAX_POLICY_BYTES) return failed(TOO_LARGE);
      text = buf.toString('utf8', 0, length);
    } finally {
      await handle.close();
    }
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    return failed(`cannot read policy file (${reason})`);
  }
  return parsePolicy(text, file, env);
}

const TOO_LARGE = `policy file is larger than ${MAX_POLICY_BYTES} bytes (1 MiB), the most a policy may be`;

/**
 * Parses policy text. `file` only labels the errors. On success the policy is deep-frozen and `hash`
 * digests its normalized content (so a reload that changes nothing effective can be told apart).
 */
export function parsePolicy(text: string, file: string, env: Env = process.env): LoadResult {
  // (length counts UTF-16 units, never more than the UTF-8 bytes; byteLength is only needed near the cap.)
  if (text.length > MAX_POLICY_BYTES / 3 && Buffer.byteLength(text) > MAX_POLICY_BYTES) {
    return { ok: false, errors: [`${file}:1:1: ${TOO_LARGE}`] };
  }
  const lines = new LineCounter();
  // uniqueKeys off: the parser's own check compares each key with every earlier one (quadratic in the
  // size of a map); dropDuplicateKeys() below does the same job with a hash set.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });

  // A syntax error leaves a tree that is the parser's guess, which nothing else can be checked against:
  // the file's errors are every syntax error the parser found, one per position.
  if (doc.errors.length > 0) return failure(syntaxErrors(doc), file, lines);

  const notPolicy = notAPolicy(doc);
  if (notPolicy) return failure([notPolicy], file, lines);

  // From here on every problem is collected and the policy is validated as far as it can be read. A
  // value that cannot be known (an unset variable, an alias to nowhere) stands in as UNKNOWN, which no
  // part of the schema accepts, and the errors the schema finds at such a node are dropped: its one
  // error is the cause, not the derived "expected a number".
  const problems: Problem[] = dropDuplicateKeys(doc);
  const unknown = new Set<Node>();
  const expanded = expandEnv(doc, env, problems, unknown);
  replaceUnresolvedAliases(doc, problems, unknown);

  let data: unknown;
  try {
    // The alias cap stops "billion laughs" expansion.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    problems.push({ offset: 0, message: clip(firstLine((err as Error).message)) });
    return failure(problems, file, lines);
  }
  const result = validatePolicyData(data);
  const locator = new Locator(doc, expanded, unknown, text);
  if (!result.success) {
    // (No spread: one issue may list 100,000 unknown keys, past what a call's arguments can hold.)
    for (const issue of result.issues) for (const p of locator.locate(issue)) problems.push(p);
  }
  if (problems.length > 0) return failure(problems, file, lines, (m) => locator.hideValues(m));
  if (!result.success) throw new Error('the schema rejected the policy without an error it could place');

  const policy = deepFreeze(result.data) as Policy;
  return { ok: true, policy, hash: createHash('sha256').update(stableStringify(policy)).digest('hex') };
}

/** The value of a node that cannot be known; it is no string, number, list or map, so nothing accepts it. */
const UNKNOWN: unique symbol = Symbol('unknown value');

function failure(
  problems: Problem[],
  file: string,
  lines: LineCounter,
  hide: (message: string) => string = (m) => m,
): LoadResult {
  return { ok: false, errors: format(problems, file, lines, hide) };
}

/**
 * Every error the parser reported, the first at each position (a second one there is the same fault).
 * Past the end of the document's content the parser has given up, and reports each token that is left
 * (a stray "{" can end the document and leave a thousand lines unread): only the first of those is kept.
 */
function syntaxErrors(doc: Document): Problem[] {
  const end = doc.range?.[1] ?? Number.POSITIVE_INFINITY;
  const quoteAt = doc.errors.some((e) => e.code === 'MISSING_CHAR') ? unclosedQuotes(doc) : null;
  const errors = doc.errors
    .map((e) => ({ e, offset: quoteAt && e.code === 'MISSING_CHAR' ? quoteAt(e.pos[0]) : e.pos[0] }))
    .sort((a, b) => a.offset - b.offset);
  const problems: Problem[] = [];
  let last = -1;
  for (const { e, offset } of errors) {
    if (offset === last || (last >= end && offset > last)) continue;
    last = offset;
    problems.push({ offset, message: clip(firstLine(e.message)) });
  }
  return problems;
}

/** An alias to no anchor is reported where it stands, and stands in as UNKNOWN (toJS would throw). */
function replaceUnresolvedAliases(doc: Document, problems: Problem[], unknown: Set<Node>): void {
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc)) return;
      problems.push({ offset: node.range?.[0] ?? 0, message: `unknown alias *${clip(node.source, 40)}` });
      const stand = new Scalar(UNKNOWN);
      stand.range = node.range;
      unknown.add(stand);
      return stand;
    },
  });
}

/**
 * A quote that is never closed runs on to where the parser notices, the end of the file or of its
 * line; the offending value is the quoted scalar, so an error there points at its opening quote: the
 * earliest opening quote of a quoted scalar that reaches the error. One pass over the document serves
 * every such error (a file may hold thousands).
 */
function unclosedQuotes(doc: Document): (errorOffset: number) => number {
  const quoted: { start: number; end: number }[] = [];
  visit(doc, {
    Scalar(_key, node) {
      if ((node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE) && node.range)
        quoted.push({ start: node.range[0], end: node.range[1] });
    },
  });
  quoted.sort((a, b) => a.end - b.end);
  // earliest[i]: the earliest start among the scalars from i on (those ending latest).
  const earliest: number[] = new Array(quoted.length);
  for (let i = quoted.length - 1, min = Number.POSITIVE_INFINITY; i >= 0; i--) {
    min = Math.min(min, quoted[i]!.start);
    earliest[i] = min;
  }
  return (errorOffset) => {
    // The first scalar that ends at or after the error.
    let lo = 0;
    let hi = quoted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (quoted[mid]!.end >= errorOffset) hi = mid;
      else lo = mid + 1;
    }
    return lo < quoted.length ? Math.min(errorOffset, earliest[lo]!) : errorOffset;
  };
}

/**
 * Every repeated key of every map, at the repeat; keys compare as the loaded object will see them. The
 * repeats are then taken out of the tree, so the first of each key is the one validated (and positioned).
 */
function dropDuplicateKeys(doc: Document): Problem[] {
  const problems: Problem[] = [];
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<string>();
      let repeats = false;
      for (const pair of map.items) {
        const k = keyText(pair.key);
        if (k === undefined) continue;
        if (seen.has(k)) {
          repeats = true;
          problems.push({
            offset: start(pair.key) ?? 0,
            message: `duplicate key ${quote(k)} (a map holds each key once)`,
          });
        }
        seen.add(k);
      }
      if (!repeats) return;
      // (Its items are visited after this call returns, so the repeats' contents are skipped as well.)
      const kept = new Set<string>();
      map.items = map.items.filter((pair) => {
        const k = keyText(pair.key);
        if (k === undefined) return true;
        if (kept.has(k)) return false;
        kept.add(k);
        return true;
      });
    },
  });
  return problems;
}

/**
 * A map none of whose keys is a policy key is some other file (a wrong path, a symlink to the wrong
 * place): one error says so, rather than one per line quoting the file back.
 */
function notAPolicy(doc: Document): Problem | null {
  const root = doc.contents;
  if (!isMap(root) || root.items.length === 0) return null;
  if (root.items.some((p) => POLICY_KEYS.includes(keyText(p.key) ?? ''))) return null;
  return {
    offset: start(root.items[0]!.key) ?? 0,
    message: `not a floodgate policy: none of its top-level keys is one of ${POLICY_KEYS.join(', ')}`,
  };
}

/**
 * A copy for GET /admin/config and logs: admin.token and any credential in store.url become "***".
 */
export function redactPolicy(policy: Policy): Policy {
  // Shares the untouched (frozen) sections; only those that hold secrets are rebuilt.
  return {
    ...policy,
    admin: { ...policy.admin, token: policy.admin.token === null ? null : '***' },
    store: { ...policy.store, url: redactUrl(policy.store.url) },
    routes: policy.routes.map(redactRouteKeys),
  };
}

/**
 * A route's allowlist keys and, when plans are chosen by the key, its plan values are values of its key:
 * API keys, often. Each is shown as '***' (their number and windows stay visible); plan values chosen
 * by a header (pro, free) are tier names and stay.
 */
function redactRouteKeys(route: Route): Route {
  const l = route.limits;
  if (l === null || (l.allowlist === null && l.plans?.by.type !== 'key')) return route;
  return {
    ...route,
    limits: {
      ...l,
      allowlist: l.allowlist && { ...l.allowlist, keys: l.allowlist.keys.map(() => '***') },
      plans:
        l.plans && l.plans.by.type === 'key'
          ? { ...l.plans, values: l.plans.values.map((p) => ({ ...p, value: '***' })) }
          : l.plans,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// ${VAR} expansion. It runs on the YAML nodes, before validation, so an unset variable is reported at its
// scalar and expanded values are validated (and positioned) like any other. Each expanded scalar remembers
// which variables it took from the environment, so that errors can name them instead of the value.

const REFERENCE = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
const VARIABLE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

interface Expanded {
  /** The variables whose values went into the scalar (defaults written in the file are no secret). */
  readonly names: readonly string[];
  /** Their values, as the environment had them. */
  readonly secrets: readonly string[];
  /** The scalar's value after expansion. */
  readonly value: string | number | boolean;
}

/**
 * Expands every value's references, adding a problem for each bad one; a scalar with a bad reference
 * becomes UNKNOWN (its value cannot be known) and joins `unknown`.
 */
function expandEnv(doc: Document, env: Env, problems: Problem[], unknown: Set<Node>): Map<Node, Expanded> {
  const expanded = new Map<Node, Expanded>();
  visit(doc, {
    Scalar(key, node) {
      // Keys are names the schema checks; only values take variables.
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${')) return;
      const offset = node.range?.[0] ?? 0;
      const names: string[] = [];
      const secrets: string[] = [];
      const problemsBefore = problems.length;
      const result = node.value.replace(REFERENCE, (whole, inner: string | undefined) => {
        if (whole === '$${') return '${'; // "$${" escapes a literal "${"
        const m = inner === undefined ? null : VARIABLE.exec(inner);
        if (!m) {
          problems.push({
            offset,
            message: `invalid reference ${clip(whole, 40)}; use \${NAME} or \${NAME:-default}`,
          });
          return whole;
        }
        const [, name, fallback] = m as unknown as [string, string, string | undefined];
        const value = env[name];
        // As in the shell, ":-" also replaces a variable that is set but empty.
        if (fallback !== undefined && !value) return fallback;
        if (value === undefined) {
          problems.push({
            offset,
            message: `environment variable ${name} is not set (give a default with \${${name}:-default})`,
          });
          return whole;
        }
        if (value !== '' && !names.includes(name)) {
          names.push(name);
          secrets.push(value);
        }
        return value;
      });
      if (problems.length > problemsBefore) {
        node.value = UNKNOWN;
        unknown.add(node);
        return;
      }
      const value = node.type === Scalar.PLAIN ? retype(result) : result;
      node.value = value;
      if (names.length > 0) expanded.set(node, { names, secrets, value });
    },
  });
  return expanded;
}

/**
 * An unquoted `${VAR}` reads as YAML would have read the value written in place (`hourly: ${N:-100}` is
 * a number, `shadow: ${S:-false}` a boolean). Numbers must round-trip exactly, so "0123" stays text.
 */
function retype(value: string): string | number | boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (/^-?\d+(\.\d+)?$/.test(value) && String(Number(value)) === value) return Number(value);
  return value;
}

// ---------------------------------------------------------------------------------------------------------
// Issue paths → source offsets.

/** Places schema issues in the document. Map lookups are indexed, so many issues cost linear time. */
class Locator {
  private readonly index = new Map<YAMLMap, Map<string, Pair>>();

  constructor(
    private readonly doc: Document,
    private readonly expanded: ReadonlyMap<Node, Expanded>,
    private readonly unknown: ReadonlySet<Node>,
    private readonly source: string | null = null,
  ) {}

  /** Where the issue is and what it says; nothing for an issue at (or under) an UNKNOWN value. */
  locate(issue: z.core.$ZodIssue): Problem[] {
    const { node, keyNode, found } = this.walk(issue.path);
    if (this.unknown.has(node as Node)) return [];
    const where = pathText(issue.path);
    const prefix = where ? `${where}: ` : '';

    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({
        offset: start(isMap(node) ? this.pair(node, k)?.key : undefined) ?? start(node) ?? 0,
        message: `${prefix}unknown key ${quote(k)} (${issue.message})`,
      }));
    }
    // A bad record key (an upstream name, a header name: params.key) is the key's fault, not its value's.
    const params = issue.code === 'custom' ? issue.params : undefined;
    const pointAtKey = !found || issue.code === 'invalid_key' || params?.key === true || isEmpty(node);
    let offset = (pointAtKey ? (start(keyNode) ?? start(node)) : start(node)) ?? 0;
    // An issue about one token inside a text (a template's placeholder) points at the token itself.
    if (found && !pointAtKey && typeof params?.token === 'string')
      offset = this.tokenAt(node, params.token, offset);
    // A missing key is reported on its parent, whose path is the prefix.
    const missing = !found && issue.code === 'invalid_type';
    const label = missing ? pathText(issue.path.slice(0, -1)) : where;
    let message = issue.message;
    const from = found && !pointAtKey ? this.expanded.get(node as Node) : undefined;
    if (from) message = hideOwnValue(message, from);
    return [{ offset, message: `${label ? `${label}: ` : ''}${message}` }];
  }

  /**
   * Messages may quote values of other nodes too (an unknown upstream, a duplicate name): no quoted
   * value that came from the environment survives anywhere.
   */
  hideValues(message: string): string {
    this.quoted ??= this.quotedValues();
    let out = message;
    for (const [form, placeholder] of this.quoted) out = out.replaceAll(form, placeholder);
    return out;
  }

  private quoted: [string, string][] | undefined;

  /** Each quoted form of each value from the environment, longest first, with what replaces it. */
  private quotedValues(): [string, string][] {
    const quoted: [string, string][] = [];
    for (const e of this.expanded.values()) {
      const placeholder = placeholderFor(e);
      if (typeof e.value === 'string') {
        for (const form of new Set([JSON.stringify(e.value), describeValue(e.value), quote(e.value)]))
          quoted.push([form, placeholder]);
      }
      // A variable's own value, wherever it is quoted from; short ones would match ordinary words.
      for (const secret of e.secrets) if (secret.length >= 6) quoted.push([secret, placeholder]);
    }
    return quoted.sort((a, b) => b[0].length - a[0].length);
  }

  /** Where `token` first appears in the source of `node`, or `fallback`. */
  private tokenAt(node: unknown, token: string, fallback: number): number {
    const range = (node as Node | null)?.range;
    if (!range || this.source === null) return fallback;
    const at = this.source.slice(range[0], range[1]).indexOf(token);
    return at === -1 ? fallback : range[0] + at;
  }

  /** Walks `path` from the document root, through aliases; stops at the deepest node that exists. */
  private walk(path: Path) {
    const doc = this.doc;
    let node: unknown = doc.contents;
    let keyNode: Node | null = null;
    for (let i = 0; i < path.length; i++) {
      if (isAlias(node)) node = node.resolve(doc);
      const seg = path[i];
      let next: { node: unknown; key: Node | null } | undefined;
      if (isMap(node)) {
        const pair = this.pair(node, String(seg));
        if (pair) next = { node: pair.value, key: pair.key as Node };
      } else if (isSeq(node) && typeof seg === 'number') {
        if (seg < node.items.length) next = { node: node.items[seg], key: null };
      }
      if (!next) return { node, keyNode, found: false };
      node = next.node;
      keyNode = next.key;
    }
    // An error inside an aliased value is in the text of its anchor, where it is fixed for every use.
    if (isAlias(node)) node = node.resolve(doc);
    return { node, keyNode, found: true };
  }

  /** The first pair of `map` whose key reads `key` (as the loaded object has it). */
  private pair(map: YAMLMap, key: string): Pair | undefined {
    let byKey = this.index.get(map);
    if (!byKey) {
      byKey = new Map();
      for (const p of map.items) {
        const k = keyText(p.key);
        if (k !== undefined && !byKey.has(k)) byKey.set(k, p);
      }
      this.index.set(map, byKey);
    }
    return byKey.get(key);
  }
}

/** '<value of REDIS_URL>': what an error shows instead of a value taken from the environment. */
function placeholderFor(e: Expanded): string {
  return `<value of ${e.names.join(' and ')}>`;
}

/**
 * The issue's own message, without the value its scalar took from the environment. Values appear
 * quoted, or bare after "got" (numbers, booleans); a message still holding the value after that (a
 * parser that quoted part of it) gives way to a plain one.
 */
function hideOwnValue(message: string, e: Expanded): string {
  const text = String(e.value);
  const placeholder = placeholderFor(e);
  let out = message;
  for (const form of [JSON.stringify(e.value), describeValue(e.value), quote(text)])
    out = out.replaceAll(form, placeholder);
  out = out.replaceAll(`got ${text}`, `got ${placeholder}`);
  const leaks = (s: string) => s.length >= 3 && out.includes(s);
  for (const s of [text, ...e.secrets]) {
    if (leaks(s) || leaks(s.trim()) || leaks(s.slice(0, 20))) return `${placeholder} is not valid here`;
  }
  return out;
}

function keyText(key: unknown): string | undefined {
  return isScalar(key) ? String(key.value) : undefined;
}

function start(node: unknown): number | undefined {
  return (node as Node | null)?.range?.[0];
}

/** An absent value (`key:` with nothing after it) has an empty range; the key is the better place. */
function isEmpty(node: unknown): boolean {
  return node == null || (isScalar(node) && node.value === null && node.range?.[0] === node.range?.[1]);
}

/** ['routes', 0, 'limits', 'daily'] → 'routes[0].limits.daily'. */
function pathText(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${clip(String(seg), 40)}` : clip(String(seg), 40);
  }
  return out;
}

/**
 * Sorted by position (ties in the order found), each error once, at most MAX_ERRORS of them and then a
 * count of the rest. Only the errors shown go through `hide`, so a file with 100,000 errors costs no
 * more than a sort.
 */
function format(
  problems: Problem[],
  file: string,
  lines: LineCounter,
  hide: (message: string) => string,
): string[] {
  const order = problems.map((_, i) => i);
  order.sort((a, b) => problems[a]!.offset - problems[b]!.offset || a - b);
  // A repeat has the same offset, so it sits in the same run of the sorted list as its first.
  const unique: Problem[] = [];
  let run = new Set<string>();
  for (let k = 0; k < order.length; k++) {
    const p = problems[order[k]!]!;
    if (k > 0 && p.offset !== problems[order[k - 1]!]!.offset) run = new Set();
    if (run.has(p.message)) continue;
    run.add(p.message);
    unique.push(p);
  }
  const out: string[] = [];
  const shown = new Set<string>();
  for (let k = 0; k < unique.length; k++) {
    const { line, col } = lines.linePos(unique[k]!.offset);
    const where = `${file}:${line}:${col}: `;
    if (out.length === MAX_ERRORS) {
      const more = unique.length - k;
      out.push(`${where}… and ${more} more error${more === 1 ? '' : 's'}`);
      break;
    }
    // Two values from the environment may read the same once hidden.
    const text = where + hide(unique[k]!.message);
    if (shown.has(text)) continue;
    shown.add(text);
    out.push(text);
  }
  return out;
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0]!.trim();
}

/** At most `max` characters of `text` (a token from the file, or a message quoting one). */
function clip(text: string, max = 90): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A key or token from the file as an error shows it: quoted, and cut short if long. */
function quote(text: string): string {
  return JSON.stringify(clip(text, 40));
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
