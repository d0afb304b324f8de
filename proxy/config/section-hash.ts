// Content hashes of policy sections, so a reload can tell unchanged routes and upstreams
// (whose counters and breakers must survive) from changed ones.
import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level: equal content gives equal text, whatever the key order. */
export function stableStringify(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const entries = Object.keys(value)
    .sort()
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${stableStringify((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}

/** A short, stable digest of a normalized section (64 bits is plenty to tell a handful of versions apart). */
export function sectionHash(value: unknown): string {
  return createHash('sha256').update(stableStringify(value)).digest('hex').slice(0, 16);
}
