// CheckpointManager against a real Redis: seed shape, append-only saves, atomicity, retention.
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointManager, type CheckpointSaved } from '../../../backend/jobs/checkpoints.js';
import { ManualClock } from '../../../core/clock.js';
import { deletePrefix, newRedis, uniquePrefix } from '../../helpers/redis.js';

interface Seg {
  start: number;
  end: number;
  text: string;
}

const seg = (i: number): Seg => ({ start: i * 30, end: i * 30 + 30, text: `segment ${i}` });
const segs = (n: number): Seg[] => Array.from({ length: n }, (_, i) => seg(i));

let redis: Redis;
const prefix = uniquePrefix('checkpoints');

beforeAll(() => {
  redis = newRedis();
});
afterEach(async () => {
  await deletePrefix(redis, prefix);
});
afterAll(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

function manager(options: Partial<ConstructorParameters<typeof CheckpointManager>[0]> = {}) {
  const clock = new ManualClock(Date.UTC(2026, 1, 21, 10, 5, 0));
  const m = new CheckpointManager({ redis, prefix, clock, ...options });
  const saved: CheckpointSaved[] = [];
  m.on('saved', (e) => saved.push(e));
  return { m, clock, saved };
}

describe('CheckpointManager', () => {
  it('returns the snake_case checkpoint shape from getLatestCheckpoint', async () => {
    const { m } = manager();
    await m.saveCheckpoint({
      jobId: 'abc123',
      stage: 'transcribe',
      progress: 0.45,
      segmentIndex: 15,
      data: { segments: segs(16), metadata: { language: 'en' } },
    });
    const latest = await m.getLatestCheckpoint<Seg>('abc123');
    expect(latest).toEqual({
      job_id: 'abc123',
      stage: 'transcribe',
      progress: 0.45,
      segment_index: 15,
      partial_data: { segments: segs(16), metadata: { language: 'en' } },
      timestamp: '2026-02-21T10:05:00.000Z',
    });
    expect(await m.getLatestCheckpoint('nobody')).toBeNull();
  });

  it('appends only the segments completed since the last save', async () => {
    const { m, saved } = manager();
    const all = segs(10);
    await m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.4,
      segmentIndex: 2,
      data: { segments: all.slice(0, 3) },
    });
    await m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.5,
      segmentIndex: 4,
      data: { segments: all.slice(0, 5) },
    });
    await m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.5,
      segmentIndex: 5,
      data: { segments: all.slice(0, 5) },
    });
    await m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.85,
      segmentIndex: 9,
      data: { segments: all },
    });
    expect(saved.map((e) => e.appended)).toEqual([3, 2, 0, 5]);
    const { segs: listKey } = m.keys('j');
    const stored = (await redis.lrange(listKey, 0, -1)).map((s) => JSON.parse(s));
    expect(stored).toEqual(all);
  });

  it('lists kept checkpoints newest first, each with its own segments', async () => {
    const { m, clock } = manager();
    for (let i = 0; i < 3; i++) {
      clock.advance(1_000);
      await m.saveCheckpoint({
        jobId: 'j',
        stage: 'transcribe',
        progress: i / 10,
        segmentIndex: i,
        data: { segments: segs(i + 1) },
      });
    }
    const list = await m.listCheckpoints<Seg>('j');
    expect(list.map((c) => c.segment_index)).toEqual([2, 1, 0]);
    expect(list.map((c) => c.partial_data.segments.length)).toEqual([3, 2, 1]);
    expect(list[0]!.timestamp > list[2]!.timestamp).toBe(true);
  });

  it('keeps at most maxCheckpoints records and puts a TTL on every key', async () => {
    const { m } = manager({ maxCheckpoints: 4, ttlSeconds: 600 });
    for (let i = 0; i < 15; i++) {
      await m.saveCheckpoint({
        jobId: 'j',
        stage: 'transcribe',
        progress: 0.5,
        segmentIndex: i,
        data: { segments: segs(i + 1) },
      });
    }
    const list = await m.listCheckpoints('j');
    expect(list.map((c) => c.segment_index)).toEqual([14, 13, 12, 11]);
    const { segs: s, log } = m.keys('j');
    for (const key of [s, log]) {
      const ttl = await redis.ttl(key);
      expect(ttl).toBeGreaterThan(590);
      expect(ttl).toBeLessThanOrEqual(600);
    }
  });

  it('never exposes segments a crashed attempt appended past its checkpoint, and resumes without duplicates', async () => {
    const first = manager();
    await first.m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.4,
      segmentIndex: 2,
      data: { segments: segs(3) },
    });
    // The crashed attempt got as far as appending two more segments, and no further.
    const { segs: listKey } = first.m.keys('j');
    await redis.rpush(
      listKey,
      JSON.stringify({ start: 90, end: 120, text: 'orphan' }),
      JSON.stringify(seg(4)),
    );

    // The next attempt is another process: no memory of the job.
    const second = manager();
    const latest = await second.m.getLatestCheckpoint<Seg>('j');
    expect(latest?.segment_index).toBe(2);
    expect(latest?.partial_data.segments).toEqual(segs(3));

    const resumed = [...latest!.partial_data.segments, seg(3), seg(4)];
    await second.m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.5,
      segmentIndex: 4,
      data: { segments: resumed },
    });
    expect((await redis.lrange(listKey, 0, -1)).map((s) => JSON.parse(s))).toEqual(segs(5));
    expect(second.saved[0]!.appended).toBe(2);
  });

  it('cleanupOldCheckpoints trims orphan segments to the latest checkpoint', async () => {
    const { m } = manager();
    await m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.4,
      segmentIndex: 1,
      data: { segments: segs(2) },
    });
    const { segs: listKey } = m.keys('j');
    await redis.rpush(listKey, 'x', 'y', 'z');
    expect(await m.cleanupOldCheckpoints('j')).toBe(3);
    expect(await redis.llen(listKey)).toBe(2);
    expect(await m.cleanupOldCheckpoints('j')).toBe(0);
  });

  it('skips a latest record whose segments are not all durable', async () => {
    const { m } = manager();
    await m.saveCheckpoint({
      jobId: 'j',
      stage: 'validate',
      progress: 0.35,
      segmentIndex: -1,
      data: { metadata: { duration: 90 } },
    });
    await m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.6,
      segmentIndex: 1,
      data: { segments: segs(2) },
    });
    // Lose the tail (say, a partial restore): the newest record points past what is there.
    await redis.rpop(m.keys('j').segs);
    const fresh = manager();
    const latest = await fresh.m.getLatestCheckpoint('j');
    expect(latest?.stage).toBe('validate');
    expect(latest?.partial_data).toEqual({ segments: [], metadata: { duration: 90 } });
  });

  it('rewinding to an earlier checkpoint drops the later records and segments', async () => {
    const { m } = manager();
    for (const n of [3, 6, 9]) {
      await m.saveCheckpoint({
        jobId: 'j',
        stage: 'transcribe',
        progress: 0.5,
        segmentIndex: n - 1,
        data: { segments: segs(n) },
      });
    }
    const fresh = manager();
    // A restart that only trusts the first 3 segments, then completes 4 more.
    const redone = [...segs(3), seg(100), seg(101), seg(102), seg(103)];
    await fresh.m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.5,
      segmentIndex: 6,
      data: { segments: segs(3) },
    });
    await fresh.m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.6,
      segmentIndex: 10,
      data: { segments: redone },
    });
    const list = await fresh.m.listCheckpoints<Seg>('j');
    expect(list.map((c) => c.partial_data.segments.length)).toEqual([7, 3, 3]);
    expect(list[0]!.partial_data.segments).toEqual(redone);
  });

  it('resends from what is durable when its memory is ahead of Redis', async () => {
    const { m } = manager();
    await m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.4,
      segmentIndex: 2,
      data: { segments: segs(3) },
    });
    await redis.del(m.keys('j').segs);
    await m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.5,
      segmentIndex: 4,
      data: { segments: segs(5) },
    });
    expect((await m.getLatestCheckpoint<Seg>('j'))?.partial_data.segments).toEqual(segs(5));
  });

  it('deleteAll removes every key of the job', async () => {
    const { m } = manager();
    await m.saveCheckpoint({
      jobId: 'j',
      stage: 'transcribe',
      progress: 0.4,
      segmentIndex: 0,
      data: { segments: segs(1) },
    });
    await m.deleteAll('j');
    expect(await redis.exists(m.keys('j').segs, m.keys('j').log)).toBe(0);
    expect(await m.listCheckpoints('j')).toEqual([]);
  });
});
