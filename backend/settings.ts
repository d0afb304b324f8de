// The backend's settings: the environment (the README's table under "The backend") parsed once, at
// start-up, into frozen settings. Sizes and durations use the policy file's units (core/units.ts),
// so `MAX_UPLOAD=200mb` and `JOB_LEASE=30s` read like the YAML; a duration needs its unit, and a
// bare number is refused with the variable's name rather than guessed at. Every default is here.
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { FloodgateError } from '../core/errors.js';
import { parseDuration, parseSize } from '../core/units.js';

type Env = Readonly<Record<string, string | undefined>>;

export const BACKEND_ROLES = ['api', 'worker', 'all'] as const;
export type BackendRole = (typeof BACKEND_ROLES)[number];

/**
 * Every default, as the environment would write it. WHISPER_MODEL defaults to
 * DATA_DIR/models/ggml-base.en.bin; WHISPER_BIN to the binary backend/whisper/build.sh built.
 */
export const BACKEND_DEFAULTS = {
  PORT: '8000',
  HOST: '127.0.0.1',
  BACKEND_ROLE: 'all',
  REDIS_URL: 'redis://127.0.0.1:6379',
  REDIS_PREFIX: 'floodgate:',
  DATA_DIR: './.data',
  WHISPER_THREADS: '2',
  WHISPER_FAST_DECODE: '0',
  /** A command name is looked up on PATH; a value with a slash is a path. */
  FFMPEG_PATH: 'ffmpeg',
  FFPROBE_PATH: 'ffprobe',
  MAX_UPLOAD: '200mb',
  /**
   * Two hours: one job then holds ~240 segments and at most ~2 h of whisper time, the longest a
   * single upload should occupy a worker; longer recordings should be split by the client.
   */
  MAX_DURATION: '2h',
  CHECKPOINT_INTERVAL: '30s',
  /**
   * Every segment: a save is one small Redis script call whatever the job's length, while each
   * segment a crash loses is seconds of whisper.cpp work to redo (bench/micro/checkpoint.ts).
   */
  CHECKPOINT_EVERY_SEGMENTS: '1',
  JOB_LEASE: '30s',
  /**
   * How long POST /v1/audio/transcriptions waits for its job: under the OpenAI SDK's own 10-minute
   * request timeout, so its client hears the job's id rather than its own timeout.
   */
  OPENAI_WAIT: '5m',
} as const;

/** Why the settings were refused: one line per variable, each naming it. */
export class SettingsError extends FloodgateError<'invalid_settings'> {
  constructor(readonly problems: readonly string[]) {
    super('SettingsError', 'invalid_settings', problems.join('\n'));
  }
}

const wholeNumber = z.string().transform((raw, ctx) => {
  const n = Number(raw);
  if (raw.trim() !== '' && Number.isSafeInteger(n) && n >= 0) return n;
  ctx.addIssue({ code: 'custom', message: `must be a whole number; got ${JSON.stringify(raw)}` });
  return z.NEVER;
});

/** Milliseconds. A bare number has no unit, so it is refused (parseDuration says how to write it). */
const duration = z.string().transform((raw, ctx) => {
  const parsed = parseDuration(/^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw);
  if (parsed.ok) return parsed.value;
  ctx.addIssue({ code: 'custom', message: parsed.error });
  return z.NEVER;
});

/** Bytes: a number with a unit, or a bare number of bytes, as max_body takes in the policy. */
const size = z.string().transform((raw, ctx) => {
  const parsed = parseSize(/^\d+$/.test(raw.trim()) ? Number(raw) : raw);
  if (parsed.ok) return parsed.value;
  ctx.addIssue({ code: 'custom', message: parsed.error });
  return z.NEVER;
});

const role = z.string().transform((raw, ctx) => {
  if ((BACKEND_ROLES as readonly string[]).includes(raw)) return raw as BackendRole;
  ctx.addIssue({ code: 'custom', message: `must be api, worker or all; got ${JSON.stringify(raw)}` });
  return z.NEVER;
});

const text = z.string();
const optionalText = z.string().optional();

/** The environment's variables, each a string once the defaults are in; the result is the settings. */
const settingsSchema = z
  .object({
    PORT: wholeNumber,
    HOST: text,
    BACKEND_ROLE: role,
    REDIS_URL: text,
    REDIS_PREFIX: text,
    DATA_DIR: text,
    WHISPER_MODEL: optionalText,
    WHISPER_BIN: optionalText,
    WHISPER_THREADS: wholeNumber,
    WHISPER_FAST_DECODE: text.transform((v) => v === '1' || v === 'true'),
    FFMPEG_PATH: text,
    FFPROBE_PATH: text,
    MAX_UPLOAD: size,
    MAX_DURATION: duration,
    CHECKPOINT_INTERVAL: duration,
    CHECKPOINT_EVERY_SEGMENTS: wholeNumber,
    JOB_LEASE: duration,
    OPENAI_WAIT: duration,
  })
  .transform((e) => {
    const dataDir = resolve(e.DATA_DIR);
    return {
      port: e.PORT,
      host: e.HOST,
      role: e.BACKEND_ROLE,
      redisUrl: e.REDIS_URL,
      keyPrefix: e.REDIS_PREFIX,
      dataDir,
      /** Path of the ggml model. */
      whisperModel: resolve(e.WHISPER_MODEL ?? join(dataDir, 'models', 'ggml-base.en.bin')),
      /** An explicit whisper.cpp binary; null: the media layer locates the one build.sh built. */
      whisperBinary: e.WHISPER_BIN === undefined ? null : resolve(e.WHISPER_BIN),
      whisperThreads: e.WHISPER_THREADS,
      /** Greedy decoding without fallback (faster; the random-weight test model needs it). */
      whisperFastDecode: e.WHISPER_FAST_DECODE,
      /** ffmpeg and ffprobe: a name to find on PATH, or a path (made absolute here). */
      mediaTools: Object.freeze({ ffmpeg: command(e.FFMPEG_PATH), ffprobe: command(e.FFPROBE_PATH) }),
      maxUploadBytes: e.MAX_UPLOAD,
      /** Longer audio fails validate with invalid_audio. */
      maxDurationSec: e.MAX_DURATION / 1000,
      checkpointIntervalMs: e.CHECKPOINT_INTERVAL,
      /** Also checkpoint every N segments; null (from 0) turns that off. */
      checkpointEverySegments: e.CHECKPOINT_EVERY_SEGMENTS > 0 ? e.CHECKPOINT_EVERY_SEGMENTS : null,
      /** A dead worker's job is taken again once its lease expires. */
      jobLeaseMs: e.JOB_LEASE,
      /** Then POST /v1/audio/transcriptions answers 408 with the job's id; the job goes on. */
      transcriptionWaitMs: e.OPENAI_WAIT,
    };
  });

/** A bare command name stays one (PATH decides); anything with a slash is a path, made absolute. */
function command(value: string): string {
  return value.includes('/') ? resolve(value) : value;
}

export type BackendSettings = Readonly<z.output<typeof settingsSchema>>;

/** `floodgate backend`'s flags, which win over the variables they stand for. */
export interface BackendFlags {
  port?: number;
  host?: string;
  role?: string;
}

const FLAG_OF: Readonly<Record<string, string>> = { PORT: '--port', HOST: '--host', BACKEND_ROLE: '--role' };

/**
 * The settings from `env`, with `flags` over them. An empty variable counts as unset. Throws a
 * SettingsError naming every variable (or flag) it refuses.
 */
export function backendSettingsFromEnv(env: Env = process.env, flags: BackendFlags = {}): BackendSettings {
  const input: Record<string, string | undefined> = { ...BACKEND_DEFAULTS };
  for (const key of Object.keys(settingsSchema.in.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const fromFlags = {
    PORT: flags.port === undefined ? undefined : String(flags.port),
    HOST: flags.host,
    BACKEND_ROLE: flags.role,
  };
  const flagged = new Set<string>();
  for (const [key, value] of Object.entries(fromFlags)) {
    if (value === undefined) continue;
    input[key] = value;
    flagged.add(key);
  }
  const parsed = settingsSchema.safeParse(input);
  if (!parsed.success) {
    throw new SettingsError(
      parsed.error.issues.map((issue) => {
        const key = String(issue.path[0] ?? '');
        return `${flagged.has(key) ? FLAG_OF[key] : key}: ${issue.message}`;
      }),
    );
  }
  return Object.freeze(parsed.data);
}
