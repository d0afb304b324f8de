// What one request counts in its route's windows (the policy's limits.cost), read on the hot path by a
// function built once per route. A header cost is believed only from a trusted proxy: a client talking
// to Floodgate directly could otherwise send `1` and pay a tenth of its uploads. From a trusted peer a
// value that is not a plain decimal integer from 1 to max is the client's fault (a 400), never quietly
// read as something else: "1e3", "5, 5", "-1", "0x10" and the like each mean a different number to
// different parsers.
import type { IncomingMessage } from 'node:http';
import type { RouteCost } from '../config/schema.js';

export interface RequestCost {
  /** The request's cost; 0 when a trusted peer sent a cost header that is not a valid one. */
  readonly of: (req: IncomingMessage, trusted: boolean) => number;
  /** The header read, lower-cased, or null for a fixed cost: it may appear only once. */
  readonly header: string | null;
  /** The 400's detail when `of` answers 0. */
  readonly invalid: string;
}

/** Digits only, no sign, no leading zero, at most 16 of them (beyond any limit a window can have). */
const PLAIN = /^[1-9][0-9]{0,15}$/;

/** A cost header's value as a cost from 1 to `max`; 0 when it is anything else. */
export function parseCost(value: string, max: number): number {
  if (!PLAIN.test(value)) return 0;
  const n = Number(value);
  return n <= max ? n : 0;
}

export function requestCost(cost: RouteCost): RequestCost {
  if (cost.type === 'fixed') {
    const units = cost.units;
    return { of: () => units, header: null, invalid: '' };
  }
  const { name, max } = cost;
  const fallback = cost.default;
  return {
    header: name,
    invalid: `${name} must be a whole number from 1 to ${max}`,
    of(req, trusted) {
      if (!trusted) return fallback;
      const value = req.headers[name];
      if (value === undefined) return fallback;
      // A second copy was refused before this (request-headers.ts), so this is one string.
      return typeof value === 'string' ? parseCost(value, max) : 0;
    },
  };
}
