// Fault 7: the backend process (API and worker) SIGKILLed at random moments, ten times in one job, with
// real ffmpeg, whisper.cpp and the tiny model. Each restart finds the job again once the dead worker's
// lease (JOB_LEASE 2s) has expired and resumes it from its last checkpoint. The job must complete, with
// a transcript identical to an uninterrupted run of the same audio, having redone no more than one
// segment per kill (a checkpoint after every segment), and leaving no files behind.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
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
import { content, faultSeed, result, seededRandom, status, submit, waitForState } from './lib/jobs.js';
import { recordFault } from './lib/report.js';

const KILLS = 10;
/** Twelve minutes of tones and silences: about 24 segments, enough for ten attempts to end mid-job. */
const AUDIO_SEC = 720;

describe('fault 7: the worker SIGKILLed ten times in one job', () => {
  const prefix = uniquePrefix('faults-sigkill');
  const seed = faultSeed();
  const random = seededRandom(seed);
  let redis: PrivateRedis;
  let dir: string;
  let audio: string;
  let model: string;
  const processes: BackendProcess[] = [];
  const current = () => processes.at(-1)!;

  const start = async (): Promise<BackendProcess> => {
    const p = await spawnBackend({
      redisUrl: redis.url,
      prefix,
      dataDir: join(dir, 'data'),
      model,
      env: { JOB_LEASE: '2s', CHECKPOINT_EVERY_SEGMENTS: '1', CHECKPOINT_INTERVAL: '1h' },
    });
    processes.push(p);
    return p;
  };

  beforeAll(async () => {
    if (!existsSync(join(projectRoot(), '.cache', 'whisper', 'bin', 'main')))
      throw new Error('whisper.cpp is not built; run npm run build:whisper');
    redis = await startPrivateRedis();
    dir = await mkdtemp(join(tmpdir(), 'floodgate-faults-sigkill-'));
    model = await tinyGgmlModelPath();
    audio = await tonePattern(join(dir, 'tones.wav'), { totalSec: AUDIO_SEC });
  });

  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill()));
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Segment indices each process transcribed for job `id`, from its log. */
  const transcribed = (id: string): number[] =>
    processes.flatMap((p) =>
      p.lines
        .filter((l) => l.msg === 'segment transcribed' && l.job_id === id)
        .map((l) => l.segment as number),
    );

  it(`completes with the uninterrupted transcript after ${KILLS} SIGKILLs`, async () => {
    await start();
    // The reference: the same audio, uninterrupted.
    const cleanId = await submit(current().url, audio);
    const clean = await waitForState(() => current().url, cleanId, ['completed'], 120_000);
    const reference = await result(current().url, cleanId);
    const total = clean.segments_total;
    expect(total).toBeGreaterThanOrEqual(2 * KILLS);
    const segmentSeconds = current()
      .lines.filter((l) => l.msg === 'segment transcribed' && l.job_id === cleanId)
      .map((l) => l.seconds as number);
    const segmentMs = (1000 * segmentSeconds.reduce((a, b) => a + b, 0)) / segmentSeconds.length;
    // Before the first segment: normalize, validate and the silence plan (from the clean run's log).
    const times = (msg: string) =>
      current()
        .lines.filter((l) => l.job_id === cleanId && (msg === '' || l.msg === msg))
        .map((l) => Date.parse(l.time as string));
    const setupMs = Math.max(100, Math.min(...times('segment transcribed')) - Math.min(...times('')));

    // Each attempt is killed at a random moment: after 0, 1 or 2 more segments, a random part of the
    // way through the next stretch of work (the set-up stages, for a first attempt that dies early).
    const id = await submit(current().url, audio);
    const kills: { stage: string; done: number }[] = [];
    let resumeAt = 0;
    for (let k = 1; k <= KILLS; k++) {
      // (Never so far that the job could end before the last kill.)
      const more = Math.min(Math.floor(random() * 3), Math.max(0, total - 4 - resumeAt));
      await waitFor(
        async () => {
          const s = await status(current().url, id);
          if (s.state === 'completed' || s.state === 'failed')
            throw new Error(`job ended ${s.state} after ${k - 1} kills`);
          return s.attempts >= k && s.state === 'running' && s.segments_done >= resumeAt + more;
        },
        { timeoutMs: 60_000, intervalMs: 20, what: `attempt ${k} to do ${more} more segments` },
      );
      const stretch = resumeAt === 0 && more === 0 ? setupMs : segmentMs;
      await new Promise((r) => setTimeout(r, random() * stretch));
      const before = await status(current().url, id);
      const exit = await current().kill('SIGKILL');
      expect(exit.signal).toBe('SIGKILL');
      kills.push({ stage: before.stage, done: before.segments_done });
      // The next attempt resumes after the last checkpoint, which is at most this far.
      resumeAt = before.segments_done;
      await start();
    }

    const done = await waitForState(() => current().url, id, ['completed'], 120_000);
    expect(done).toMatchObject({
      state: 'completed',
      resumed: true,
      attempts: KILLS + 1,
      segments_done: total,
      error: null,
    });
    const transcript = await result(current().url, id);
    expect(content(transcript)).toEqual(content(reference));

    // Every segment was transcribed, and at most one per kill twice (a checkpoint follows each segment).
    const all = transcribed(id);
    expect([...new Set(all)].sort((a, b) => a - b)).toEqual([...Array(total).keys()]);
    const redone = all.length - total;
    expect(redone).toBeLessThanOrEqual(KILLS);
    // Nothing of either job is left in DATA_DIR. The worker removes its files just after it marks the
    // job completed, so the test waits for that, with a bound, rather than racing it.
    await waitFor(
      async () =>
        (await readdir(join(dir, 'data', 'uploads'))).length === 0 &&
        (await readdir(join(dir, 'data', 'work'))).length === 0,
      { timeoutMs: 10_000, what: 'the completed jobs to leave nothing in DATA_DIR' },
    );
    // The last process ends cleanly.
    expect(await current().kill('SIGTERM')).toEqual({ code: 0, signal: null });

    await recordFault({
      fault: `7 Backend SIGKILLed ${KILLS}× at random moments in one ${AUDIO_SEC / 60}-min job (JOB_LEASE 2s, seed ${seed})`,
      observed:
        `killed at ${kills.map((k) => `${k.stage}:${k.done}/${total}`).join(', ')}; ` +
        `completed after ${done.attempts} attempts, transcript identical to the uninterrupted run (${total} segments), ${redone} segments redone`,
      lost: 'nothing: 0 segments lost, transcript identical, no files left',
    });
  });
});
