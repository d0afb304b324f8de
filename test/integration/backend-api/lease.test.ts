// Leases through real BullMQ: a graceful stop hands the running job back, and a job whose worker
// died is taken again once its lease expires. (The real-process SIGKILL test is crash-resume.)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUE_NAME } from '../../../backend/jobs/queue.js';
import { expectedFakeSegments, startTestBackend, type TestBackend } from '../../helpers/backend.js';
import { deletePrefix, newRedis, REDIS_URL, uniquePrefix } from '../../helpers/redis.js';
import { waitFor } from '../../helpers/wait.js';

let redis: Redis;
let dataDir: string;
const started: TestBackend[] = [];

beforeAll(async () => {
  redis = newRedis();
  dataDir = await mkdtemp(join(tmpdir(), 'fg-lease-'));
});
afterAll(async () => {
  for (const b of started) await b.dispose();
  for (const b of started) await deletePrefix(redis, b.prefix);
  redis.disconnect();
  await rm(dataDir, { recursive: true, force: true });
});

async function backend(prefix: string, role: 'api' | 'worker' | 'all') {
  const b = await startTestBackend({
    keyPrefix: prefix,
    dataDir,
    role,
    jobLeaseMs: 1_000,
    checkpointEverySegments: 2,
  });
  started.push(b);
  return b;
}

async function submit(api: TestBackend, seconds: number): Promise<string> {
  const res = await fetch(`${api.url}/transcribe`, {
    method: 'POST',
    body: String(seconds),
    headers: { 'content-type': 'audio/wav' },
  });
  return ((await res.json()) as { job_id: string }).job_id;
}

async function status(api: TestBackend, id: string) {
  return (await (await fetch(`${api.url}/status/${id}`)).json()) as Record<string, unknown>;
}

describe('leases', () => {
  it('a graceful stop checkpoints the running job and hands it back; the next worker resumes it', async () => {
    const prefix = uniquePrefix('lease-handback');
    const api = await backend(prefix, 'api');
    const first = await backend(prefix, 'worker');
    const held = first.transcriber.hold(90);
    const id = await submit(api, 180);
    await held;
    await first.shutdown();
    expect(await status(api, id)).toMatchObject({ state: 'queued', segments_done: 3, attempts: 1 });

    const second = await backend(prefix, 'worker');
    const done = await waitFor(
      async () => {
        const s = await status(api, id);
        return s.state === 'completed' ? s : null;
      },
      { timeoutMs: 15_000, what: 'the resumed job to complete' },
    );
    expect(done).toMatchObject({ resumed: true, attempts: 2, segments_done: 6 });
    // Everything before the interrupted segment was checkpointed: only 90 s is redone.
    expect(second.transcriber.calls).toEqual([90, 120, 150]);
    const result = (await (await fetch(`${api.url}/result/${id}`)).json()) as { segments: unknown };
    expect(result.segments).toEqual(expectedFakeSegments(180));
  });

  it('a job whose worker died is taken again when its lease expires', async () => {
    const prefix = uniquePrefix('lease-expiry');
    const api = await backend(prefix, 'api');
    // A worker that takes the job, then dies holding it: it never renews or releases the lease.
    const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    let taken!: () => void;
    const tookIt = new Promise<void>((r) => {
      taken = r;
    });
    const doomed = new Worker(
      QUEUE_NAME,
      () => {
        taken();
        return new Promise(() => {});
      },
      // Same lease settings as the backend's workers: BullMQ throttles stalled checks queue-wide.
      { connection, prefix: `${prefix}bull`, lockDuration: 1_000, stalledInterval: 1_000 },
    );
    const id = await submit(api, 60);
    await tookIt;
    await doomed.close(true);
    connection.disconnect();

    const rescuer = await backend(prefix, 'worker');
    const done = await waitFor(
      async () => {
        const s = await status(api, id);
        return s.state === 'completed' ? s : null;
      },
      { timeoutMs: 15_000, what: 'the abandoned job to complete' },
    );
    expect(done).toMatchObject({ segments_done: 2 });
    expect(rescuer.lines.some((l) => l.msg === 'lease expired; job requeued' && l.job_id === id)).toBe(true);
  });
});
