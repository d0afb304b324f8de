// Values with units, as policies and environment variables write them: durations ('50ms', '2s'),
// timeouts (durations a timer can hold) and sizes ('512kb'). Each parser returns the value or an error
// message, so the proxy's policy schema, the backend's settings, the CLI and tests share one definition.

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };
export const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
export const fail = (error: string): Parsed<never> => ({ ok: false, error });

export const DURATION_UNITS_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** '50ms' | '2s' | '1m' | '1h' | '1d' (decimals allowed: '1.5s') → milliseconds; > 0. */
export function parseDuration(input: unknown): Parsed<number> {
  const hint = 'a number with a unit: ms, s, m, h or d (e.g. 50ms, 2s, 1m)';
  if (typeof input === 'number') return fail(`duration ${input} needs a unit; use ${hint}`);
  if (typeof input !== 'string') return fail(`expected a duration, ${hint}; got ${describeValue(input)}`);
  const m = DURATION_RE.exec(input.trim());
  if (!m) return fail(`invalid duration ${describeValue(input)}; use ${hint}`);
  const ms = Math.round(Number(m[1]) * DURATION_UNITS_MS[m[2] as keyof typeof DURATION_UNITS_MS]);
  if (ms <= 0) return fail(`duration ${describeValue(input)} must be at least 1ms`);
  // Millisecond arithmetic on it (window indexes, expiry times) must stay exact.
  if (!Number.isSafeInteger(ms)) return fail(`duration ${describeValue(input)} is too long`);
  return ok(ms);
}

/** Node's timers hold at most 2^31 - 1 ms; a longer delay would fire at once. 24d is just below. */
const MAX_TIMEOUT_MS = 24 * 86_400_000;

/** A duration that becomes a timer (a timeout): as parseDuration, and at most 24d. */
export function parseTimeout(input: unknown): Parsed<number> {
  const r = parseDuration(input);
  if (r.ok && r.value > MAX_TIMEOUT_MS)
    return fail(`timeout ${describeValue(input)} is too long; the longest is 24d`);
  return r;
}

export const SIZE_UNITS = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const;
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)$/i;

/** '512kb' | '200mb' | '1gb' (binary: 1kb = 1024 bytes) or a plain integer of bytes → bytes; ≥ 0. */
export function parseSize(input: unknown): Parsed<number> {
  const hint = 'a number of bytes or a number with a unit: kb, mb or gb (e.g. 512kb, 200mb)';
  if (typeof input === 'number') {
    return Number.isSafeInteger(input) && input >= 0 ? ok(input) : fail(`invalid size ${input}; use ${hint}`);
  }
  if (typeof input !== 'string') return fail(`expected a size, ${hint}; got ${describeValue(input)}`);
  const m = SIZE_RE.exec(input.trim());
  if (!m) return fail(`invalid size ${JSON.stringify(input)}; use ${hint}`);
  return ok(Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase() as keyof typeof SIZE_UNITS]));
}

/** How a value reads in an error message: short, and typed ("a list", "a map", "an empty value"). */
export function describeValue(value: unknown): string {
  if (value === undefined || value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return String(value);
}
