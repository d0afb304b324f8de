// A job's public status (GET /status), its request options, its segment plan and its result, in
// Redis. Keys, under the backend's prefix:
//   job:<id>          HASH  state stage progress segments_done segments_total resumed attempts error
//                           language format prompt idem plan created_at updated_at
//   job:<id>:result   STRING  the transcript as JSON (the json result format)
//   idem:<sha256>     STRING  {"job", "request"} for an Idempotency-Key in its client's scope
// Every write made on behalf of a running job goes through "only if the job still exists": a
// DELETE removes the hash, and a worker must never bring a cancelled job back to life. A failed
// conditional write is also how the worker learns, between segments, that its job was cancelled.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ResultFormat, Transcript } from './format.js';
import type { Stage } from './progress.js';

export type JobState = 'queued' | 'running' | 'completed' | 'failed';

export interface JobErrorInfo {
  code: string;
  message: string;
}

/**
 * What a client waiting on a job should know that its state does not say: engine_not_ready while
 * the job is queued on a backend that cannot run it yet (no model, no ffmpeg, ...). Its message
 * says what is missing and how to fix it, without server paths.
 */
export interface JobNotice {
  code: 'engine_not_ready';
  message: string;
}

/** The GET /status body, as the API answers it and the client reads it. */
export interface JobStatus {
  job_id: string;
  state: JobState;
  stage: Stage;
  progress: number;
  segments_done: number;
  segments_total: number;
  resumed: boolean;
  attempts: number;
  error: JobErrorInfo | null;
  /** Seconds of audio, once validate has measured it; null before. */
  audio_duration: number | null;
  /**
   * Seconds of audio transcribed per second of work in the current attempt (cutting and
   * whisper.cpp together), after its first segment; null before. What an ETA divides by.
   */
  transcribe_speed: number | null;
  /** Present only while there is something to say; added by GET /status, never stored. */
  notice?: JobNotice;
}

export interface PlannedSegment {
  start: number;
  end: number;
}

export interface JobRecord {
  status: JobStatus;
  language: string | null;
  format: ResultFormat | null;
  /** Conditions the decoder of every segment; null: none. */
  prompt: string | null;
  plan: PlannedSegment[] | null;
}

/** What a worker may change in a job's status; the id and attempt count are the queue's. */
export type StatusUpdate = Partial<Omit<JobStatus, 'job_id' | 'attempts' | 'notice'>>;

// HSET only when the hash exists. ARGV: field, value, field, value, ...
const UPDATE_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`;

// Counts an attempt and marks the job running, if it still exists and has not ended (a worker
// that died between storing the result and telling the queue leaves a finished job queued);
// replies the hash.
const START_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'completed' and state ~= 'failed' then
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HSET', KEYS[1], 'state', 'running', 'error', '', 'updated_at', ARGV[1])
end
return redis.call('HGETALL', KEYS[1])
`;

// Stores the result and completes the job in one step, if it still exists. ARGV: json, ttl, now.
const COMPLETE_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
local total = redis.call('HGET', KEYS[1], 'segments_total') or '0'
redis.call('HSET', KEYS[1], 'state', 'completed', 'stage', 'done', 'progress', '1', 'segments_done', total,
  'error', '', 'plan', '', 'updated_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
`;

type StoreCommands = {
  fgJobUpdate(key: string, ...fieldsAndValues: string[]): Promise<number>;
  fgJobStart(key: string, now: string): Promise<string[] | null>;
  fgJobComplete(key: string, resultKey: string, json: string, ttl: number, now: string): Promise<number>;
};

export interface JobStoreOptions {
  redis: Redis;
  prefix: string;
  /** How long a job's status and result are kept (default 7 days). */
  jobTtlSeconds?: number;
  /** How long an Idempotency-Key maps to its job (default 24 h). */
  idempotencyTtlSeconds?: number;
  now?: () => number;
}

export interface NewJob {
  id: string;
  language: string | null;
  format: ResultFormat | null;
  prompt?: string | null;
  idempotencyHash: string | null;
}

export class JobStore {
  private readonly redis: Redis & StoreCommands;
  private readonly prefix: string;
  private readonly jobTtlSeconds: number;
  private readonly idempotencyTtlSeconds: number;
  private readonly now: () => number;

  constructor(options: JobStoreOptions) {
    const redis = options.redis as Redis & Partial<StoreCommands>;
    if (typeof redis.fgJobUpdate !== 'function') {
      redis.defineCommand('fgJobUpdate', { numberOfKeys: 1, lua: UPDATE_LUA });
      redis.defineCommand('fgJobStart', { numberOfKeys: 1, lua: START_LUA });
      redis.defineCommand('fgJobComplete', { numberOfKeys: 2, lua: COMPLETE_LUA });
    }
    this.redis = redis as Redis & StoreCommands;
    this.prefix = options.prefix;
    this.jobTtlSeconds = options.jobTtlSeconds ?? 7 * 86_400;
    this.idempotencyTtlSeconds = options.idempotencyTtlSeconds ?? 86_400;
    this.now = options.now ?? Date.now;
  }

  async create(job: NewJob): Promise<void> {
    const key = this.key(job.id);
    const now = this.isoNow();
    await this.redis
      .multi()
      .hset(key, {
        state: 'queued',
        stage: 'upload',
        progress: '0.1',
        segments_done: '0',
        segments_total: '0',
        resumed: '0',
        attempts: '0',
        error: '',
        language: job.language ?? '',
        format: job.format ?? '',
        prompt: job.prompt ?? '',
        idem: job.idempotencyHash ?? '',
        plan: '',
        created_at: now,
        updated_at: now,
      })
      .expire(key, this.jobTtlSeconds)
      .exec();
  }

  async get(id: string): Promise<JobRecord | null> {
    const hash = await this.redis.hgetall(this.key(id));
    return Object.keys(hash).length === 0 ? null : toRecord(id, hash);
  }

  /** Just the status fields: the hot GET /status path skips the plan, which grows with the job. */
  async status(id: string): Promise<JobStatus | null> {
    return statusFrom(id, await this.redis.hmget(this.key(id), ...STATUS_FIELDS));
  }

  /** The statuses of several jobs in one round trip, in order; null for a job that does not exist. */
  async statuses(ids: readonly string[]): Promise<(JobStatus | null)[]> {
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hmget(this.key(id), ...STATUS_FIELDS);
    const replies = (await pipeline.exec()) ?? [];
    return ids.map((id, i) => {
      const [error, values] = replies[i] ?? [new Error('no reply'), null];
      if (error) throw error;
      return statusFrom(id, values as (string | null)[]);
    });
  }

  async exists(id: string): Promise<boolean> {
    return (await this.redis.exists(this.key(id))) === 1;
  }

  /** Applies `update` if the job still exists; false means it was deleted (cancelled). */
  async update(id: string, update: StatusUpdate): Promise<boolean> {
    const args: string[] = [];
    for (const [field, value] of Object.entries(update)) {
      if (value === undefined) continue;
      args.push(field, encode(value));
    }
    args.push('updated_at', this.isoNow());
    return (await this.redis.fgJobUpdate(this.key(id), ...args)) === 1;
  }

  /**
   * Counts one more attempt and marks the job running; null when the job no longer exists. A job
   * that already completed or failed is returned as it is, untouched.
   */
  async startAttempt(id: string): Promise<JobRecord | null> {
    const flat = await this.redis.fgJobStart(this.key(id), this.isoNow());
    if (!flat) return null;
    const hash: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) hash[flat[i]!] = flat[i + 1]!;
    return toRecord(id, hash);
  }

  /** Stores the segment plan once, so every attempt cuts exactly the same segments. */
  async setPlan(id: string, plan: readonly PlannedSegment[]): Promise<boolean> {
    return (await this.redis.fgJobUpdate(this.key(id), 'plan', JSON.stringify(plan))) === 1;
  }

  async complete(id: string, transcript: Transcript): Promise<boolean> {
    const reply = await this.redis.fgJobComplete(
      this.key(id),
      this.resultKey(id),
      JSON.stringify(transcript),
      this.jobTtlSeconds,
      this.isoNow(),
    );
    return reply === 1;
  }

  /** The stored transcript as JSON text, or null. */
  async resultJson(id: string): Promise<string | null> {
    return this.redis.get(this.resultKey(id));
  }

  /** Deletes the job's status, result and Idempotency-Key mapping. */
  async delete(id: string): Promise<boolean> {
    const key = this.key(id);
    const idem = await this.redis.hget(key, 'idem');
    const keys = [key, this.resultKey(id)];
    if (idem) keys.push(this.idemKey(idem));
    return (await this.redis.del(...keys)) > 0;
  }

  /** Notes the job's Idempotency-Key, so deleting the job releases the key. */
  async linkIdempotency(id: string, hash: string): Promise<void> {
    await this.redis.fgJobUpdate(this.key(id), 'idem', hash);
  }

  /** The job an Idempotency-Key already maps to, and the request that made it, if any. */
  async findIdempotent(hash: string): Promise<IdempotentJob | null> {
    return parseIdempotent(await this.redis.get(this.idemKey(hash)));
  }

  /**
   * Maps the key to `claim` unless it already maps to a job: returns what it maps to, or null
   * when claimed.
   */
  async claimIdempotent(hash: string, claim: IdempotentJob): Promise<IdempotentJob | null> {
    const key = this.idemKey(hash);
    const set = await this.redis.set(key, JSON.stringify(claim), 'EX', this.idempotencyTtlSeconds, 'NX');
    return set === 'OK' ? null : parseIdempotent(await this.redis.get(key));
  }

  private key(id: string): string {
    return `${this.prefix}job:${id}`;
  }

  private resultKey(id: string): string {
    return `${this.prefix}job:${id}:result`;
  }

  private idemKey(hash: string): string {
    return `${this.prefix}idem:${hash}`;
  }

  private isoNow(): string {
    return new Date(this.now()).toISOString();
  }
}

/** What an Idempotency-Key maps to: its job, and the fingerprint of the request that made it. */
export interface IdempotentJob {
  job: string;
  request: string;
}

function parseIdempotent(value: string | null): IdempotentJob | null {
  return value === null ? null : (JSON.parse(value) as IdempotentJob);
}

/**
 * Idempotency-Keys are stored hashed with the scope they belong to (the client's identity): fixed
 * length, no client text inside a key name, and one client's key never finds another's job.
 */
export function hashIdempotencyKey(scope: string, key: string): string {
  return createHash('sha256')
    .update(JSON.stringify([scope, key]))
    .digest('hex');
}

const STATUS_FIELDS = [
  'state',
  'stage',
  'progress',
  'segments_done',
  'segments_total',
  'resumed',
  'attempts',
  'error',
  'audio_duration',
  'transcribe_speed',
] as const;

function statusFrom(id: string, values: readonly (string | null)[]): JobStatus | null {
  if (values[0] == null) return null;
  const hash: Record<string, string> = {};
  STATUS_FIELDS.forEach((field, i) => {
    const v = values[i];
    if (v != null) hash[field] = v;
  });
  return toRecord(id, hash).status;
}

function encode(value: unknown): string {
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (value === null) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function toRecord(id: string, h: Record<string, string>): JobRecord {
  return {
    status: {
      job_id: id,
      state: (h.state ?? 'queued') as JobState,
      stage: (h.stage ?? 'upload') as Stage,
      progress: Number(h.progress ?? 0),
      segments_done: Number(h.segments_done ?? 0),
      segments_total: Number(h.segments_total ?? 0),
      resumed: h.resumed === '1',
      attempts: Number(h.attempts ?? 0),
      error: h.error ? (JSON.parse(h.error) as JobErrorInfo) : null,
      audio_duration: h.audio_duration ? Number(h.audio_duration) : null,
      transcribe_speed: h.transcribe_speed ? Number(h.transcribe_speed) : null,
    },
    language: h.language || null,
    format: (h.format || null) as ResultFormat | null,
    prompt: h.prompt || null,
    plan: h.plan ? (JSON.parse(h.plan) as PlannedSegment[]) : null,
  };
}
