// The backend's settings from the environment (the README's table under "The backend"), parsed and checked once at start-up.
// Sizes and durations use the policy file's units, so `MAX_UPLOAD=200mb` reads like the YAML.
import { join, resolve } from 'node:path';
import { parseDuration, parseSize } from '../core/units.js';

export type BackendRole = 'api' | 'worker' | 'all';

export interface BackendEnvSettings {
  port: number;
  host: string;
  redisUrl: string;
  dataDir: string;
  /** Path of the ggml model; DATA_DIR/models/ggml-base.en.bin when WHISPER_MODEL is unset. */
  whisperModel: string;
  /** Explicit whisper.cpp binary (WHISPER_BIN); null: the media layer locates it. */
  whisperBinary: string | null;
  whisperThreads: number;
  /** WHISPER_FAST_DECODE=1: greedy decoding without fallback (faster; the test model needs it). */
  whisperFastDecode: boolean;
  maxUploadBytes: number;
  /** Longest audio accepted (MAX_DURATION, default 2h): longer fails validate with invalid_audio. */
  maxDurationSec: number;
  checkpointIntervalMs: number;
  /** Also checkpoint every N segments (CHECKPOINT_EVERY_SEGMENTS, default 5; 0 turns it off). */
  checkpointEverySegments: number | null;
  /** The job lease (JOB_LEASE, default 30s): a dead worker's job is taken again once it expires. */
  jobLeaseMs: number;
  keyPrefix: string;
}

export const DEFAULT_PORT = 8000;
export const DEFAULT_MAX_UPLOAD = '200mb';
/**
 * Two hours: one job then holds ~240 segments and at most ~2 h of whisper time, the longest a
 * single upload should occupy a worker; longer recordings should be split by the client.
 */
export const DEFAULT_MAX_DURATION = '2h';

type Env = Record<string, string | undefined>;

export function settingsFromEnv(env: Env = process.env): BackendEnvSettings {
  const dataDir = resolve(env.DATA_DIR || './.data');
  const every = integer(env, 'CHECKPOINT_EVERY_SEGMENTS', 5);
  return {
    port: integer(env, 'PORT', DEFAULT_PORT),
    host: env.HOST || '127.0.0.1',
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    dataDir,
    whisperModel: resolve(env.WHISPER_MODEL || join(dataDir, 'models', 'ggml-base.en.bin')),
    whisperBinary: env.WHISPER_BIN ? resolve(env.WHISPER_BIN) : null,
    whisperThreads: integer(env, 'WHISPER_THREADS', 2),
    whisperFastDecode: env.WHISPER_FAST_DECODE === '1' || env.WHISPER_FAST_DECODE === 'true',
    maxUploadBytes: size(env, 'MAX_UPLOAD', DEFAULT_MAX_UPLOAD),
    maxDurationSec: duration(env, 'MAX_DURATION', DEFAULT_MAX_DURATION) / 1000,
    checkpointIntervalMs: duration(env, 'CHECKPOINT_INTERVAL', '30s'),
    checkpointEverySegments: every > 0 ? every : null,
    jobLeaseMs: duration(env, 'JOB_LEASE', '30s'),
    keyPrefix: env.REDIS_PREFIX || 'floodgate:',
  };
}

export function parseRole(value: string | undefined): BackendRole {
  const role = value ?? 'all';
  if (role === 'api' || role === 'worker' || role === 'all') return role;
  throw new Error(`--role must be api, worker or all; got ${JSON.stringify(value)}`);
}

function integer(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new Error(`${name} must be a whole number; got ${JSON.stringify(raw)}`);
  return n;
}

function size(env: Env, name: string, fallback: string): number {
  const raw = env[name] || fallback;
  if (/^\d+$/.test(raw)) return Number(raw);
  const parsed = parseSize(raw);
  if (!parsed.ok) throw new Error(`${name}: ${parsed.error}`);
  return parsed.value;
}

/** Milliseconds; a bare number is seconds. */
function duration(env: Env, name: string, fallback: string): number {
  const raw = env[name] || fallback;
  if (/^\d+(\.\d+)?$/.test(raw)) return Number(raw) * 1000;
  const parsed = parseDuration(raw);
  if (!parsed.ok) throw new Error(`${name}: ${parsed.error}`);
  return parsed.value;
}
