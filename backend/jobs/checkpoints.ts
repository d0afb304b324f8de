// CheckpointManager: durable progress of a job, so a
// crashed or stopped worker's job resumes where it stopped.
//
// Layout, per job (one hash tag, so a Redis Cluster keeps both keys on one slot):
//   <prefix>ckpt:{<jobId>}:segs  LIST of JSON segments, append-only, in transcript order
//   <prefix>ckpt:{<jobId>}:log   LIST of JSON checkpoint records, newest first, at most maxCheckpoints
// A record holds the stage, progress, segment_index, small metadata and `segment_count`: how
// many entries of :segs belong to it. A save appends only the segments completed since the last
// save and pushes one record, in one Lua script: Redis runs it whole or not at all, so a crash
// can never leave a latest record that points past the durable segments. The cost of a save is
// O(new segments + maxCheckpoints), independent of the job's length.
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { type Clock, systemClock } from '../../core/clock.js';

export interface CheckpointData<S, M> {
  /** Every segment completed so far, in order. Only the ones not yet durable are sent to Redis. */
  segments?: readonly S[];
  metadata?: M;
}

export interface SaveCheckpointInput<S = unknown, M = Record<string, unknown>> {
  jobId: string;
  stage: string;
  progress: number;
  /** Index of the last unit of work completed (the last segment processed); -1 for none. */
  segmentIndex: number;
  data?: CheckpointData<S, M>;
}

/** A checkpoint as getLatestCheckpoint returns it (snake_case: the stored JSON's field names). */
export interface Checkpoint<S = unknown, M = Record<string, unknown>> {
  job_id: string;
  stage: string;
  progress: number;
  segment_index: number;
  partial_data: { segments: S[]; metadata: M };
  /** ISO 8601. */
  timestamp: string;
}

export interface CheckpointManagerOptions {
  redis: Redis;
  /** Key prefix, e.g. "floodgate:". */
  prefix?: string;
  /** shouldSave says yes once this much time has passed since the last save. */
  checkpointIntervalMs?: number;
  /** shouldSave also says yes every N units of work (default 1: after each); null for time only. */
  everySegments?: number | null;
  ttlSeconds?: number;
  maxCheckpoints?: number;
  clock?: Clock;
}

export interface CheckpointSaved {
  jobId: string;
  stage: string;
  segmentIndex: number;
  /** Segments appended by this save. */
  appended: number;
  /** Segments durable after it. */
  segmentCount: number;
  durationMs: number;
}

export type CheckpointEvents = { saved: [event: CheckpointSaved] };

interface StoredRecord {
  stage: string;
  progress: number;
  segment_index: number;
  segment_count: number;
  metadata: unknown;
  timestamp: string;
}

interface JobState {
  /** Segments known to be durable in :segs; undefined until learned from Redis. */
  durable: number | undefined;
  lastSaveAt: number;
  lastSavedIndex: number;
}

// KEYS: segs, log. ARGV: base, ttl, max, record, seg... Appends the new segments after the first
// `base` ones (trimming any orphans beyond them: a previous attempt's work past its last
// checkpoint, or a rewind), drops records that referenced the trimmed tail, pushes the record.
// Replies {0, len} without writing when fewer than `base` segments are durable.
const SAVE_LUA = `
local base = tonumber(ARGV[1])
local len = redis.call('LLEN', KEYS[1])
if len < base then return {0, len} end
if len > base then
  if base == 0 then redis.call('DEL', KEYS[1]) else redis.call('LTRIM', KEYS[1], 0, base - 1) end
  local recs = redis.call('LRANGE', KEYS[2], 0, -1)
  redis.call('DEL', KEYS[2])
  for i = #recs, 1, -1 do
    if cjson.decode(recs[i]).segment_count <= base then redis.call('LPUSH', KEYS[2], recs[i]) end
  end
end
local i = 5
while i <= #ARGV do
  local j = math.min(i + 999, #ARGV)
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
local count = base + #ARGV - 4
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('EXPIRE', KEYS[2], ARGV[2])
if count > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return {1, count}
`;

// KEYS: segs, log. The newest record whose segments are all durable, and those segments, read
// in one atomic step so a concurrent save cannot interleave.
const LATEST_LUA = `
local len = redis.call('LLEN', KEYS[1])
local recs = redis.call('LRANGE', KEYS[2], 0, -1)
for i = 1, #recs do
  local c = cjson.decode(recs[i]).segment_count
  if c <= len then
    if c == 0 then return {recs[i], {}} end
    return {recs[i], redis.call('LRANGE', KEYS[1], 0, c - 1)}
  end
end
return false
`;

// KEYS: segs, log. ARGV: max. Keeps the newest `max` records and trims :segs to what the newest
// record references, so a job restarting from that checkpoint never sees duplicates.
const CLEANUP_LUA = `
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[1]) - 1)
local newest = redis.call('LINDEX', KEYS[2], 0)
local len = redis.call('LLEN', KEYS[1])
local keep = 0
if newest then keep = math.min(len, cjson.decode(newest).segment_count) end
if keep == 0 then redis.call('DEL', KEYS[1]) elseif keep < len then redis.call('LTRIM', KEYS[1], 0, keep - 1) end
return len - keep
`;

type CheckpointCommands = {
  fgCheckpointSave(segs: string, log: string, ...args: (string | number)[]): Promise<[number, number]>;
  fgCheckpointLatest(segs: string, log: string): Promise<[string, string[]] | null>;
  fgCheckpointCleanup(segs: string, log: string, max: number): Promise<number>;
};

export class CheckpointManager extends EventEmitter<CheckpointEvents> {
  readonly checkpointIntervalMs: number;
  readonly everySegments: number | null;
  readonly ttlSeconds: number;
  readonly maxCheckpoints: number;
  private readonly redis: Redis & CheckpointCommands;
  private readonly prefix: string;
  private readonly clock: Clock;
  private readonly jobs = new Map<string, JobState>();

  constructor(options: CheckpointManagerOptions) {
    super();
    this.prefix = options.prefix ?? 'floodgate:';
    this.checkpointIntervalMs = positive('checkpointIntervalMs', options.checkpointIntervalMs ?? 30_000);
    // A save costs one script call of constant size; a unit of work lost to a crash costs far more.
    this.everySegments =
      options.everySegments === null ? null : positiveInt('everySegments', options.everySegments ?? 1);
    this.ttlSeconds = positiveInt('ttlSeconds', options.ttlSeconds ?? 86_400);
    this.maxCheckpoints = positiveInt('maxCheckpoints', options.maxCheckpoints ?? 10);
    this.clock = options.clock ?? systemClock;
    const redis = options.redis as Redis & Partial<CheckpointCommands>;
    // defineCommand caches the script's SHA and falls back to EVAL on NOSCRIPT; defining twice on
    // one client (several managers in a process) is harmless.
    if (typeof redis.fgCheckpointSave !== 'function') {
      redis.defineCommand('fgCheckpointSave', { numberOfKeys: 2, lua: SAVE_LUA });
      redis.defineCommand('fgCheckpointLatest', { numberOfKeys: 2, lua: LATEST_LUA });
      redis.defineCommand('fgCheckpointCleanup', { numberOfKeys: 2, lua: CLEANUP_LUA });
    }
    this.redis = redis as Redis & CheckpointCommands;
  }

  /**
   * The save policy: true once checkpointIntervalMs has passed since this job's last save, or
   * everySegments units have completed since it. The first call for a job only starts the clock.
   */
  shouldSave(jobId: string, segmentIndex: number): boolean {
    const state = this.state(jobId, segmentIndex - 1);
    if (this.clock.now() - state.lastSaveAt >= this.checkpointIntervalMs) return true;
    return this.everySegments !== null && segmentIndex - state.lastSavedIndex >= this.everySegments;
  }

  async saveCheckpoint<S, M>(input: SaveCheckpointInput<S, M>): Promise<Checkpoint<S, M>> {
    const startedAt = performance.now();
    const { jobId, stage, progress, segmentIndex } = input;
    const segments = input.data?.segments ?? [];
    const metadata = (input.data?.metadata ?? {}) as M;
    const state = this.state(jobId, segmentIndex);
    const { segs, log } = this.keys(jobId);
    const timestamp = new Date(this.clock.now()).toISOString();

    let base = state.durable ?? Math.min(segments.length, await this.redis.llen(segs));
    for (;;) {
      base = Math.min(base, segments.length);
      const record: StoredRecord = {
        stage,
        progress,
        segment_index: segmentIndex,
        segment_count: segments.length,
        metadata,
        timestamp,
      };
      const args: (string | number)[] = [base, this.ttlSeconds, this.maxCheckpoints, JSON.stringify(record)];
      for (let i = base; i < segments.length; i++) args.push(JSON.stringify(segments[i]));
      const [ok, count] = await this.redis.fgCheckpointSave(segs, log, ...args);
      if (ok === 1) {
        const appended = segments.length - base;
        state.durable = count;
        state.lastSaveAt = this.clock.now();
        state.lastSavedIndex = segmentIndex;
        if (this.listenerCount('saved') > 0) {
          this.emit('saved', {
            jobId,
            stage,
            segmentIndex,
            appended,
            segmentCount: count,
            durationMs: performance.now() - startedAt,
          });
        }
        return {
          job_id: jobId,
          stage,
          progress,
          segment_index: segmentIndex,
          // The caller's own array, not a copy: copying would make every save O(job length).
          partial_data: { segments: segments as S[], metadata },
          timestamp,
        };
      }
      // Fewer segments are durable than we believed (keys expired or were deleted): resend from there.
      base = count;
    }
  }

  /** The newest checkpoint whose segments are all durable, or null. */
  async getLatestCheckpoint<S = unknown, M = Record<string, unknown>>(
    jobId: string,
  ): Promise<Checkpoint<S, M> | null> {
    const { segs, log } = this.keys(jobId);
    const reply = await this.redis.fgCheckpointLatest(segs, log);
    if (!reply) return null;
    const [raw, rawSegments] = reply;
    const record = JSON.parse(raw) as StoredRecord;
    const checkpoint = toCheckpoint<S, M>(
      jobId,
      record,
      rawSegments.map((s) => JSON.parse(s) as S),
    );
    // A worker resuming from here appends after exactly these segments.
    const state = this.state(jobId, record.segment_index);
    state.durable = record.segment_count;
    state.lastSavedIndex = record.segment_index;
    state.lastSaveAt = this.clock.now();
    return checkpoint;
  }

  /** Every kept checkpoint, newest first. */
  async listCheckpoints<S = unknown, M = Record<string, unknown>>(
    jobId: string,
  ): Promise<Checkpoint<S, M>[]> {
    const { segs, log } = this.keys(jobId);
    const reply = await this.redis.multi().lrange(log, 0, -1).lrange(segs, 0, -1).exec();
    if (!reply) return [];
    const records = (reply[0]?.[1] ?? []) as string[];
    const segments = ((reply[1]?.[1] ?? []) as string[]).map((s) => JSON.parse(s) as S);
    return records
      .map((raw) => JSON.parse(raw) as StoredRecord)
      .filter((r) => r.segment_count <= segments.length)
      .map((r) => toCheckpoint<S, M>(jobId, r, segments.slice(0, r.segment_count)));
  }

  /**
   * Keeps the newest maxCheckpoints records and trims the segment list to what the newest one
   * references (orphans from an attempt that died between checkpoints). Returns segments removed.
   */
  async cleanupOldCheckpoints(jobId: string): Promise<number> {
    const { segs, log } = this.keys(jobId);
    const removed = await this.redis.fgCheckpointCleanup(segs, log, this.maxCheckpoints);
    const state = this.jobs.get(jobId);
    if (state && removed > 0) state.durable = undefined;
    return removed;
  }

  /** Deletes every checkpoint of the job (it completed, failed or was cancelled). */
  async deleteAll(jobId: string): Promise<void> {
    const { segs, log } = this.keys(jobId);
    await this.redis.del(segs, log);
    this.jobs.delete(jobId);
  }

  /** Drops this process's memory of a job (its save clock); Redis is untouched. */
  forget(jobId: string): void {
    this.jobs.delete(jobId);
  }

  keys(jobId: string): { segs: string; log: string } {
    const base = `${this.prefix}ckpt:{${jobId}}:`;
    return { segs: base + 'segs', log: base + 'log' };
  }

  private state(jobId: string, lastSavedIndex: number): JobState {
    let state = this.jobs.get(jobId);
    if (!state) {
      state = { durable: undefined, lastSaveAt: this.clock.now(), lastSavedIndex };
      this.jobs.set(jobId, state);
    }
    return state;
  }
}

function toCheckpoint<S, M>(jobId: string, r: StoredRecord, segments: S[]): Checkpoint<S, M> {
  return {
    job_id: jobId,
    stage: r.stage,
    progress: r.progress,
    segment_index: r.segment_index,
    partial_data: { segments, metadata: (r.metadata ?? {}) as M },
    timestamp: r.timestamp,
  };
}

function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`CheckpointManager: ${name} must be > 0`);
  return value;
}

function positiveInt(name: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0)) {
    throw new RangeError(`CheckpointManager: ${name} must be a positive integer`);
  }
  return value;
}
