// YAML text → validated, frozen policy, or a list of `FILE:LINE:COL: message` errors.
// Positions come from the YAML nodes: the schema reports paths, and each path is walked back to its node.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  Scalar,
  visit,
} from 'yaml';
import type { z } from 'zod';
import { type Policy, validatePolicyData } from './schema.js';
import { stableStringify } from './section-hash.js';

export type LoadResult =
  | { readonly ok: true; readonly policy: Policy; readonly hash: string }
  | { readonly ok: false; readonly errors: readonly string[] };

type Env = Readonly<Record<string, string | undefined>>;
type Path = readonly PropertyKey[];

interface Problem {
  offset: number;
  message: string;
}

/** Reads and parses a policy file; a file that cannot be read is one error at 1:1. */
export async function loadPolicyFile(file: string, env: Env = process.env): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    return { ok: false, errors: [`${file}:1:1: cannot read policy file (${reason})`] };
  }
  return parsePolicy(text, file, env);
}

/**
 * Parses policy text. `file` only labels the errors. On success the policy is deep-frozen and `hash`
 * digests its normalized content (so a reload that changes nothing effective can be told apart).
 */
export function parsePolicy(text: string, file: string, env: Env = process.env): LoadResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const report = (problems: Problem[]): LoadResult => ({ ok: false, errors: format(problems, file, lines) });

  // Past the first syntax error the parser is guessing, and its further errors are mostly echoes.
  const syntax = doc.errors[0];
  if (syntax) {
    const key =
      syntax.code === 'DUPLICATE_KEY' ? /^(?:"[^"]*"|'[^']*'|[^:\s]+)/.exec(text.slice(syntax.pos[0])) : null;
    const message = key
      ? `duplicate key "${key[0].replace(/^["']|["']$/g, '')}" (a map holds each key once)`
      : firstLine(syntax.message);
    const offset = syntax.code === 'MISSING_CHAR' ? unclosedQuoteAt(doc, syntax.pos[0]) : syntax.pos[0];
    return report([{ offset, message }]);
  }
  const envProblems = expandEnv(doc, env);
  if (envProblems.length > 0) return report(envProblems);

  const aliases: Problem[] = [];
  visit(doc, {
    Alias(_key, node) {
      if (!node.resolve(doc))
        aliases.push({ offset: node.range?.[0] ?? 0, message: `unknown alias *${node.source}` });
    },
  });
  if (aliases.length > 0) return report(aliases);

  let data: unknown;
  try {
    // The alias cap stops "billion laughs" expansion.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return report([{ offset: 0, message: firstLine((err as Error).message) }]);
  }
  const result = validatePolicyData(data);
  if (!result.success) return report(result.error.issues.flatMap((issue) => locate(doc, issue)));

  const policy = deepFreeze(result.data) as Policy;
  return { ok: true, policy, hash: createHash('sha256').update(stableStringify(policy)).digest('hex') };
}

/**
 * A quote that is never closed runs on to the end of the file, which is where the parser notices; the
 * offending value is the quoted scalar, so point at its opening quote.
 */
function unclosedQuoteAt(doc: Document, errorOffset: number): number {
  let start = errorOffset;
  visit(doc, {
    Scalar(_key, node) {
      const quoted = node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE;
      if (quoted && node.range && node.range[1] >= errorOffset && node.range[0] < start)
        start = node.range[0];
    },
  });
  return start;
}

/**
 * A copy for GET /admin/config and logs: admin.token and any password in store.url become "***".
 */
export function redactPolicy(policy: Policy): Policy {
  // Shares the untouched (frozen) sections; only the two that hold secrets are rebuilt.
  return {
    ...policy,
    admin: { ...policy.admin, token: policy.admin.token === null ? null : '***' },
    store: { ...policy.store, url: redactUrl(policy.store.url) },
  };
}

/** 'redis://user:secret@host:6379' → 'redis://user:***@host:6379'. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password) return url;
    u.password = '***';
    return u.href;
  } catch {
    // Not parseable, so no structure to trust: blank anything between "//…:" and "@".
    return url.replace(/(\/\/[^/@:]*:)[^@/]*@/, '$1***@');
  }
}

// ---------------------------------------------------------------------------------------------------------
// ${VAR} expansion. It runs on the YAML nodes, before validation, so an unset variable is reported at its
// scalar and expanded values are validated (and positioned) like any other.

const REFERENCE = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
const VARIABLE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

function expandEnv(doc: Document, env: Env): Problem[] {
  const problems: Problem[] = [];
  visit(doc, {
    Scalar(key, node) {
      // Keys are names the schema checks; only values take variables.
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${')) return;
      const offset = node.range?.[0] ?? 0;
      const expanded = node.value.replace(REFERENCE, (whole, inner: string | undefined) => {
        if (whole === '$${') return '${'; // "$${" escapes a literal "${"
        const m = inner === undefined ? null : VARIABLE.exec(inner);
        if (!m) {
          problems.push({ offset, message: `invalid reference ${whole}; use \${NAME} or \${NAME:-default}` });
          return whole;
        }
        const [, name, fallback] = m as unknown as [string, string, string | undefined];
        const value = env[name];
        // As in the shell, ":-" also replaces a variable that is set but empty.
        if (fallback !== undefined) return value ? value : fallback;
        if (value === undefined) {
          problems.push({
            offset,
            message: `environment variable ${name} is not set (give a default with \${${name}:-default})`,
          });
          return whole;
        }
        return value;
      });
      node.value = node.type === Scalar.PLAIN ? retype(expanded) : expanded;
    },
  });
  return problems;
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

/** Walks `path` from the document root; stops at the deepest node that exists. */
function walk(doc: Document, path: Path) {
  let node: unknown = doc.contents;
  let keyNode: Node | null = null;
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const seg = path[i];
    let next: { node: unknown; key: Node | null } | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(seg));
      if (pair) next = { node: pair.value, key: pair.key as Node };
    } else if (isSeq(node) && typeof seg === 'number') {
      if (seg < node.items.length) next = { node: node.items[seg], key: null };
    }
    if (!next) return { node, keyNode, found: false };
    node = next.node;
    keyNode = next.key;
  }
  return { node, keyNode, found: true };
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

function locate(doc: Document, issue: z.core.$ZodIssue): Problem[] {
  const where = pathText(issue.path);
  const prefix = where ? `${where}: ` : '';
  const { node, keyNode, found } = walk(doc, issue.path);

  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => {
      const pair = isMap(node) ? node.items.find((p) => keyText(p.key) === k) : undefined;
      return {
        offset: start(pair?.key) ?? start(node) ?? 0,
        message: `${prefix}unknown key "${k}" (${issue.message})`,
      };
    });
  }
  // A bad record key (an upstream name) is the key's fault, not its value's.
  const pointAtKey = !found || issue.code === 'invalid_key' || isEmpty(node);
  const offset = (pointAtKey ? (start(keyNode) ?? start(node)) : start(node)) ?? 0;
  // A missing key is reported on its parent, whose path is the prefix.
  const missing = !found && issue.code === 'invalid_type';
  const label = missing ? pathText(issue.path.slice(0, -1)) : where;
  return [{ offset, message: `${label ? `${label}: ` : ''}${issue.message}` }];
}

/** ['routes', 0, 'limits', 'daily'] → 'routes[0].limits.daily'. */
function pathText(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

function format(problems: Problem[], file: string, lines: LineCounter): string[] {
  const sorted = problems
    .map((p, i) => ({ ...lines.linePos(p.offset), message: p.message, i }))
    .sort((a, b) => a.line - b.line || a.col - b.col || a.i - b.i);
  return [...new Set(sorted.map((p) => `${file}:${p.line}:${p.col}: ${p.message}`))];
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0]!.trim();
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
