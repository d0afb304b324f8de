// Fault 8: the backend's Redis (appendonly yes, appendfsync always) is SIGKILLed and restarted from its
// append-only file while one job is running and others wait in the queue. The backend process stays up,
// answers 503 while Redis is away, and every job completes once it is back, each with the transcript of
// an uninterrupted run: the queue, the job records and the checkpoints all came back from the AOF.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../core/paths.js';
import { tonePattern } from '../helpers/audio.js';
import { type BackendProcess, spawnBackend } from '../helpers/backend-process.js';
import { tinyGgmlModelPath } from '../helpers/ggml-model.js';
import { uniquePrefix } from '../helpers/redis.js';
import { type PrivateRedis, startPrivateRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait.js';
import { content, type JobStatus, result, status, submit, waitForState } from './lib/jobs.js';
import { recordFault } from './lib/report.js';

const JOBS = 4;
const AUDIO_SEC = 240;
const OUTAGE_MS = 3_000;

describe('fault 8: Redis restarted under queued and running jobs', () => {
  const prefix = uniquePrefix('faults-aof');
  let redis: PrivateRedis;
  let dir: string;
  let audio: string;
  let backend: BackendProcess;

  beforeAll(async () => {
    if (!existsSync(join(projectRoot(), '.cache', 'whisper', 'bin', 'main')))
      throw new Error('whisper.cpp is not built; run npm run build:whisper');
    dir = await mkdtemp(join(tmpdir(), 'floodgate-faults-aof-'));
    await mkdir(join(dir, 'redis'));
    redis = await startPrivateRedis({ persistDir: join(dir, 'redis') });
    audio = await tonePattern(join(dir, 'tones.wav'), { totalSec: AUDIO_SEC });
    backend = await spawnBackend({
      redisUrl: redis.url,
      prefix,
      dataDir: join(dir, 'data'),
      model: await tinyGgmlModelPath(),
      env: { JOB_LEASE: '2s', CHECKPOINT_EVERY_SEGMENTS: '1', CHECKPOINT_INTERVAL: '1h' },
    });
  });

  afterAll(async () => {
    await backend?.kill();
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('completes every job, with the uninterrupted transcript, after a restart from the AOF', async () => {
    const url = () => backend.url;
    const referenceId = await submit(url(), audio);
    await waitForState(url, referenceId, ['completed'], 120_000);
    const reference = await result(url(), referenceId);

    const ids: string[] = [];
    for (let i = 0; i < JOBS; i++) ids.push(await submit(url(), audio));
    // One job mid-transcription, the others waiting behind it.
    const snapshot = await waitFor(
      async () => {
        const all = await Promise.all(ids.map((id) => status(url(), id)));
        const running = all.filter((s) => s.state === 'running' && s.segments_done >= 1);
        const queued = all.filter((s) => s.state === 'queued');
        return running.length === 1 && queued.length >= 2 ? all : null;
      },
      { timeoutMs: 60_000, intervalMs: 50, what: 'one job running and others queued' },
    );

    await redis.stop();
    const down = performance.now();
    // While Redis is away the API says so, and the process stays up.
    const during = await fetch(`${url()}/status/${ids[0]}`);
    expect(during.status).toBe(503);
    await waitFor(() => performance.now() - down >= OUTAGE_MS, {
      timeoutMs: OUTAGE_MS + 5_000,
      intervalMs: 100,
      what: 'the outage to last',
    });
    expect(backend.child.exitCode).toBeNull();
    await redis.start();

    const finals: JobStatus[] = [];
    for (const id of ids) finals.push(await waitForState(url, id, ['completed'], 180_000));
    for (const id of ids) expect(content(await result(url(), id))).toEqual(content(reference));
    expect(backend.child.exitCode).toBeNull();
    // The same process did all of it.
    expect(backend.lines.filter((l) => l.msg === 'backend listening')).toHaveLength(1);

    await recordFault({
      fault: `8 Redis (AOF, fsync always) SIGKILLed for ${OUTAGE_MS / 1000} s with 1 job running and ${JOBS - 1} queued`,
      observed:
        `before: ${snapshot.map((s) => `${s.state}${s.state === 'running' ? ` ${s.segments_done}/${s.segments_total}` : ''}`).join(', ')}; ` +
        `API answered 503 while down; after restart all ${JOBS} completed (attempts ${finals.map((f) => f.attempts).join('/')}), transcripts identical to the reference`,
      lost: `nothing: 0 of ${JOBS} jobs lost, 0 transcripts differ`,
    });
  });
});
