import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { CheckpointManager } from '../../../backend/jobs/checkpoints.js';
import { ManualClock } from '../../../core/clock.js';

// shouldSave never touches Redis; a stand-in that accepts the script definitions is enough.
const noRedis = { defineCommand() {} } as unknown as Redis;

function manager(options: { intervalMs?: number; every?: number | null }) {
  const clock = new ManualClock();
  const m = new CheckpointManager({
    redis: noRedis,
    clock,
    checkpointIntervalMs: options.intervalMs ?? 30_000,
    everySegments: options.every ?? null,
  });
  return { m, clock };
}

describe('checkpoint policy', () => {
  it('saves once the interval has passed since the first look', () => {
    const { m, clock } = manager({ intervalMs: 30_000 });
    expect(m.shouldSave('j', 0)).toBe(false);
    clock.advance(29_999);
    expect(m.shouldSave('j', 1)).toBe(false);
    clock.advance(1);
    expect(m.shouldSave('j', 2)).toBe(true);
  });

  it('saves every N segments when asked to', () => {
    const { m } = manager({ intervalMs: 3_600_000, every: 5 });
    const saves = [];
    for (let i = 0; i < 12; i++) if (m.shouldSave('j', i)) saves.push(i);
    // Nothing was saved, so each call measures from the first segment: 4 is the fifth.
    expect(saves).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it('saves after every segment by default, with the interval still in force', () => {
    const clock = new ManualClock();
    const m = new CheckpointManager({ redis: noRedis, clock });
    expect(m.everySegments).toBe(1);
    expect(m.checkpointIntervalMs).toBe(30_000);
    for (let i = 0; i < 5; i++) expect(m.shouldSave('j', i)).toBe(true);
    // null still turns the count off, leaving the interval alone.
    const timed = new CheckpointManager({ redis: noRedis, clock, everySegments: null });
    expect(timed.shouldSave('j', 0)).toBe(false);
    clock.advance(30_000);
    expect(timed.shouldSave('j', 1)).toBe(true);
  });

  it('keeps a clock per job', () => {
    const { m, clock } = manager({ intervalMs: 1_000 });
    m.shouldSave('a', 0);
    clock.advance(1_000);
    expect(m.shouldSave('b', 0)).toBe(false);
    expect(m.shouldSave('a', 1)).toBe(true);
  });

  it('forget() restarts a job clock', () => {
    const { m, clock } = manager({ intervalMs: 1_000 });
    m.shouldSave('a', 0);
    clock.advance(1_000);
    m.forget('a');
    expect(m.shouldSave('a', 1)).toBe(false);
  });

  it('rejects nonsense settings', () => {
    expect(() => new CheckpointManager({ redis: noRedis, maxCheckpoints: 0 })).toThrow(RangeError);
    expect(() => new CheckpointManager({ redis: noRedis, everySegments: 1.5 })).toThrow(RangeError);
    expect(() => new CheckpointManager({ redis: noRedis, checkpointIntervalMs: -1 })).toThrow(RangeError);
  });
});
