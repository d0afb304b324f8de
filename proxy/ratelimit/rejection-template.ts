// The answer to a request over its limits, shaped by a route's `limits.rejection`: its status, a JSON
// body template and extra headers, with {{placeholders}} for what the refusal knows. A template is
// checked by the schema (splitPlaceholders) and compiled once per route (compileRejection), so a
// refusal only concatenates pre-rendered JSON text with a few numbers: nothing is parsed per request.
import type { Rejection } from './headers.js';

/** What a template may refer to: the refusing window's limit and name, the seconds to wait, the route. */
export const PLACEHOLDERS = ['limit', 'window', 'retry_after', 'route'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

export type TemplatePart = string | { readonly placeholder: Placeholder };

export type SplitResult =
  | { readonly ok: true; readonly parts: readonly TemplatePart[] }
  | { readonly ok: false; readonly error: string; readonly token: string };

// `{{` always opens a placeholder (there is no escape: an error body has no need of a literal `{{`).
const OPEN = '{{';
const PLACEHOLDER = /^\{\{\s*([^{}]*?)\s*\}\}/;
const KNOWN: ReadonlySet<string> = new Set(PLACEHOLDERS);

/** The text between placeholders, and the placeholders; an unknown or unclosed one is an error. */
export function splitPlaceholders(text: string): SplitResult {
  const parts: TemplatePart[] = [];
  let from = 0;
  for (let at = text.indexOf(OPEN); at !== -1; at = text.indexOf(OPEN, from)) {
    const m = PLACEHOLDER.exec(text.slice(at, at + 64));
    if (m === null) {
      const token = text.slice(at, at + 20);
      return { ok: false, token, error: `malformed placeholder ${JSON.stringify(token)}; ${USE}` };
    }
    if (!KNOWN.has(m[1]!)) {
      return { ok: false, token: m[0], error: `unknown placeholder ${m[0]}; ${USE}` };
    }
    if (at > from) parts.push(text.slice(from, at));
    parts.push({ placeholder: m[1] as Placeholder });
    from = at + m[0].length;
  }
  if (from < text.length) parts.push(text.slice(from));
  return { ok: true, parts };
}

const USE = `use ${PLACEHOLDERS.map((p) => `{{${p}}}`).join(', ')}`;

/** A JSON value as YAML gives it (the schema has checked it: finite numbers, string keys). */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { [k: string]: JsonValue };

export interface RejectionSettings {
  readonly status: number;
  /** null: the default body. */
  readonly body: JsonValue | null;
  readonly headers: Readonly<Record<string, string>>;
}

/** The answer a route gives when its limits refuse a request, compiled. */
export interface RejectionAnswer {
  readonly status: number;
  body(r: Rejection): string;
  /** Extra headers (lower-case names), or null for none; shared between calls, so never to be changed. */
  headers(r: Rejection): Record<string, string> | null;
}

/** The body the proxy sends when a policy does not shape it (the README's documented 429 body). */
export const DEFAULT_BODY: JsonValue = {
  error: 'Rate limit exceeded',
  limit: '{{limit}}',
  window: '{{window}}',
  retry_after: '{{retry_after}}',
};

export const DEFAULT_REJECTION: RejectionSettings = { status: 429, body: null, headers: {} };

// A compiled template: JSON text with holes. Literal text is kept whole; a hole is a placeholder,
// written as a JSON value (`quoted`: a string that was exactly the placeholder) or inside a string.
type Segment = string | { readonly placeholder: Exclude<Placeholder, 'route'>; readonly quoted: boolean };

export function compileRejection(settings: RejectionSettings, route: string): RejectionAnswer {
  const body = compileJson(settings.body ?? DEFAULT_BODY, route);
  const names = Object.keys(settings.headers);
  const values = names.map((n) => compileText(settings.headers[n]!, route));
  const dynamic = values.some((v) => typeof v !== 'string');
  const fixed: Record<string, string> | null =
    names.length === 0 || dynamic
      ? null
      : Object.fromEntries(names.map((n, i) => [n.toLowerCase(), values[i] as string]));
  return {
    status: settings.status,
    body: (r) => render(body, r),
    headers:
      names.length === 0
        ? () => null
        : dynamic
          ? (r) =>
              // fromEntries defines each name as its own property, whatever the name ('__proto__' is a token).
              Object.fromEntries(
                names.map((n, i) => {
                  const v = values[i]!;
                  return [n.toLowerCase(), typeof v === 'string' ? v : render(v, r)];
                }),
              )
          : () => fixed,
  };
}

function render(segments: readonly Segment[], r: Rejection): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'string') out += s;
    else if (s.placeholder === 'limit') out += r.limit;
    else if (s.placeholder === 'retry_after') out += r.retryAfter;
    else out += s.quoted ? JSON.stringify(r.window) : JSON.stringify(r.window).slice(1, -1);
  }
  return out;
}

/** A header value: plain text when it has no placeholder, else segments written unquoted. */
function compileText(text: string, route: string): string | Segment[] {
  const out: Segment[] = [];
  for (const part of parts(text)) {
    if (typeof part === 'string') push(out, part);
    else if (part.placeholder === 'route') push(out, route);
    else out.push({ placeholder: part.placeholder, quoted: false });
  }
  return out.length === 1 && typeof out[0] === 'string' ? out[0] : out.length === 0 ? '' : out;
}

function compileJson(template: JsonValue, route: string): Segment[] {
  const out: Segment[] = [];
  const walk = (v: JsonValue): void => {
    if (typeof v === 'string') str(v);
    else if (v === null || typeof v !== 'object') push(out, JSON.stringify(v));
    else if (Array.isArray(v)) {
      push(out, '[');
      v.forEach((item, i) => {
        if (i > 0) push(out, ',');
        walk(item);
      });
      push(out, ']');
    } else {
      push(out, '{');
      Object.entries(v).forEach(([k, item], i) => {
        push(out, `${i > 0 ? ',' : ''}${JSON.stringify(k)}:`);
        walk(item);
      });
      push(out, '}');
    }
  };
  const str = (text: string): void => {
    const ps = parts(text);
    const only = ps.length === 1 ? ps[0]! : null;
    // A string that is exactly one placeholder takes the value's own JSON type: "{{limit}}" → 100.
    if (only !== null && typeof only !== 'string') {
      if (only.placeholder === 'route') push(out, JSON.stringify(route));
      else out.push({ placeholder: only.placeholder, quoted: true });
      return;
    }
    push(out, '"');
    for (const p of ps) {
      if (typeof p === 'string') push(out, JSON.stringify(p).slice(1, -1));
      else if (p.placeholder === 'route') push(out, JSON.stringify(route).slice(1, -1));
      else out.push({ placeholder: p.placeholder, quoted: false });
    }
    push(out, '"');
  };
  walk(template);
  return out;
}

function parts(text: string): readonly TemplatePart[] {
  const split = splitPlaceholders(text);
  // The schema has refused any template that does not split.
  if (!split.ok) throw new TypeError(split.error);
  return split.parts;
}

/** Appends literal text, merged with the literal before it. */
function push(out: Segment[], text: string): void {
  const last = out.length - 1;
  if (last >= 0 && typeof out[last] === 'string') out[last] = (out[last] as string) + text;
  else out.push(text);
}
