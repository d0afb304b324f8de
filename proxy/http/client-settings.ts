// How much the data plane tolerates from one client: process settings from the environment, like
// the listeners', not policy. Each is a size or time limit on something the client controls.
import { parseTimeout } from '../../core/units.js';

export interface ClientSettings {
  /** FLOODGATE_HEADERS_TIMEOUT: longest a client may take to send its request headers (slowloris). */
  readonly headersTimeoutMs: number;
  /** FLOODGATE_BODY_TIMEOUT: longest pause while a request body arrives; 408 after it. */
  readonly bodyTimeoutMs: number;
  /** FLOODGATE_SEND_TIMEOUT: longest a client may take no response bytes; the connection is closed after it. */
  readonly sendTimeoutMs: number;
  /** FLOODGATE_MAX_HEADERS: most header lines a request may carry; 431 beyond. */
  readonly maxHeaders: number;
  /** FLOODGATE_UNDERSCORES_IN_HEADERS=1 forwards header names with an underscore (dropped by default). */
  readonly underscores: boolean;
}

export const DEFAULT_CLIENT_SETTINGS: ClientSettings = {
  headersTimeoutMs: 15_000,
  bodyTimeoutMs: 60_000,
  sendTimeoutMs: 60_000,
  maxHeaders: 100,
  underscores: false,
};

/** The settings `env` gives; throws an Error naming the variable for a value it cannot read. */
export function clientSettingsFromEnv(env: Readonly<Record<string, string | undefined>>): ClientSettings {
  const d = DEFAULT_CLIENT_SETTINGS;
  return {
    headersTimeoutMs: duration(env, 'FLOODGATE_HEADERS_TIMEOUT', d.headersTimeoutMs),
    bodyTimeoutMs: duration(env, 'FLOODGATE_BODY_TIMEOUT', d.bodyTimeoutMs),
    sendTimeoutMs: duration(env, 'FLOODGATE_SEND_TIMEOUT', d.sendTimeoutMs),
    maxHeaders: count(env, 'FLOODGATE_MAX_HEADERS', d.maxHeaders),
    underscores: env.FLOODGATE_UNDERSCORES_IN_HEADERS === '1',
  };
}

function duration(env: Readonly<Record<string, string | undefined>>, name: string, fallback: number): number {
  const raw = env[name];
  if (!raw) return fallback;
  const parsed = parseTimeout(raw);
  if (!parsed.ok) throw new Error(`${name}: ${parsed.error}`);
  if (parsed.value <= 0) throw new Error(`${name}: must be more than 0`);
  return parsed.value;
}

function count(env: Readonly<Record<string, string | undefined>>, name: string, fallback: number): number {
  const raw = env[name];
  if (!raw) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > 10_000)
    throw new Error(`${name}: expected a whole number from 1 to 10000, got "${raw.slice(0, 20)}"`);
  return n;
}
