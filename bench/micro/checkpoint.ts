// Micro benchmark of CheckpointManager.saveCheckpoint: the cost of one save (one more segment
// completed) for a job that already holds 10 segments and for one that holds 1,000. Saves append
// only the new segments, so the two should cost about the same; the naive way (rewrite every
// segment in one JSON value per save) is measured beside it as the baseline that grows with the job.
// Ratios within one run matter, not absolute numbers.
//
// Then what the save policy buys: a job runs through the pipeline's save rule (a save after
// validate, then after each segment the manager's shouldSave says yes to, and after the last) on
// a manual clock that advances one segment's whisper.cpp time per segment, once with the former
// default (every 5 segments or 30 s) and once with the backend's default settings. A worker that
// crashes after segment k redoes every segment completed since the last save: the table shows how
// many, for each k, beside what a save costs Redis per segment.
//
//   npx tsx bench/micro/checkpoint.ts [--segment-seconds S]   (REDIS_URL, default redis://127.0.0.1:6379; ~10 s)
//
// S is one segment's whisper.cpp time (default 4.5: a 30 s segment, base.en model, 2 cores).
// Prints the tables and writes bench/results/checkpoint.json.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { CheckpointManager } from '../../backend/jobs/checkpoints.js';
import { backendSettingsFromEnv } from '../../backend/settings.js';
import { ManualClock } from '../../core/clock.js';
import { projectPath } from '../../core/paths.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const SIZES = [10, 1_000] as const;
const SAVES = 300;
const WARMUP = 30;
const PREFIX = `fgbench:ckpt:${randomBytes(4).toString('hex')}:`;
const { values: flags } = parseArgs({ options: { 'segment-seconds': { type: 'string' } }, strict: true });
const SEGMENT_SECONDS = Number(flags['segment-seconds'] ?? 4.5);
if (!(SEGMENT_SECONDS > 0)) throw new Error('--segment-seconds must be a positive number');
/** Crashes after segments 1..CRASH_AFTER of a job long enough that the last save is not the end. */
const CRASH_AFTER = 10;
/** The default before every segment was: 5 segments or 30 s, whichever came first. */
const FORMER_POLICY = { checkpointIntervalMs: 30_000, everySegments: 5 } as const;

interface Segment {
  start: number;
  end: number;
  text: string;
}

// About what whisper.cpp emits per segment: a few seconds, a sentence.
const segment = (i: number): Segment => ({
  start: i * 4.2,
  end: i * 4.2 + 3.9,
  text: ` and this is sentence number ${i} of the transcript, roughly as long as whisper makes them`,
});
const metadata = { duration: 7_200, language: 'en', segments_total: 240 };

interface Row {
  size: number;
  method: string;
  medianUs: number;
  p95Us: number;
  bytesPerSave: number;
}

async function main(): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const checkpoints = new CheckpointManager({ redis, prefix: PREFIX, maxCheckpoints: 10 });
  const rows: Row[] = [];
  let formerRun: PolicyRun = { durable: [], saves: 0 };
  let currentRun: PolicyRun = { durable: [], saves: 0 };
  let currentPolicy: Policy = FORMER_POLICY;
  const started = performance.now();
  try {
    for (const size of SIZES) {
      const all = Array.from({ length: size }, (_, i) => segment(i));
      const before = all.slice(0, size - 1);

      // Append-only: each sample is a job with size-1 durable segments saving its size-th.
      const appendTimes: number[] = [];
      let appended = 0;
      checkpoints.on('saved', (e) => {
        appended = e.appended;
      });
      // Prepared first, so the big initial writes (and their garbage) stay out of the timed loop.
      for (let n = 0; n < WARMUP + SAVES; n++) {
        await checkpoints.saveCheckpoint({
          jobId: `append-${size}-${n}`,
          stage: 'transcribe',
          progress: 0.5,
          segmentIndex: size - 2,
          data: { segments: before, metadata },
        });
      }
      for (let n = 0; n < WARMUP + SAVES; n++) {
        const t0 = performance.now();
        await checkpoints.saveCheckpoint({
          jobId: `append-${size}-${n}`,
          stage: 'transcribe',
          progress: 0.5,
          segmentIndex: size - 1,
          data: { segments: all, metadata },
        });
        if (n >= WARMUP) appendTimes.push(performance.now() - t0);
      }
      checkpoints.removeAllListeners('saved');
      const recordBytes = JSON.stringify({
        stage: 'transcribe',
        progress: 0.5,
        segment_index: size - 1,
        metadata,
      }).length;
      rows.push(
        row(
          size,
          'append-only (this manager)',
          appendTimes,
          appended * JSON.stringify(all[0]).length + recordBytes,
        ),
      );

      // The naive way: the whole checkpoint, every segment included, rewritten on each save.
      const rewriteTimes: number[] = [];
      const value = JSON.stringify({
        job_id: 'x',
        stage: 'transcribe',
        progress: 0.5,
        segment_index: size - 1,
        partial_data: { segments: all, metadata },
      });
      for (let n = 0; n < WARMUP + SAVES; n++) {
        const key = `${PREFIX}rewrite:${size}:${n}`;
        const t0 = performance.now();
        // Serialisation is part of the cost: the naive way serialises the whole state per save.
        const text = JSON.stringify({
          job_id: 'x',
          stage: 'transcribe',
          progress: 0.5,
          segment_index: size - 1,
          partial_data: { segments: all, metadata },
        });
        await redis.multi().lpush(key, text).ltrim(key, 0, 9).expire(key, 86_400).exec();
        if (n >= WARMUP) rewriteTimes.push(performance.now() - t0);
      }
      rows.push(row(size, 'rewrite all (seed baseline)', rewriteTimes, value.length));

      // Resume cost, for reference: reading the latest checkpoint is O(segments) by nature.
      const readTimes: number[] = [];
      for (let n = 0; n < WARMUP + SAVES; n++) {
        const t0 = performance.now();
        await checkpoints.getLatestCheckpoint(`append-${size}-${n % SAVES}`);
        if (n >= WARMUP) readTimes.push(performance.now() - t0);
      }
      rows.push(row(size, 'getLatestCheckpoint (resume)', readTimes, 0));
    }
    const settings = backendSettingsFromEnv({});
    const current = {
      checkpointIntervalMs: settings.checkpointIntervalMs,
      everySegments: settings.checkpointEverySegments,
    };
    formerRun = await runPolicy(redis, FORMER_POLICY);
    currentRun = await runPolicy(redis, current);
    currentPolicy = current;
  } finally {
    await deletePrefix(redis);
    redis.disconnect();
  }

  console.log(
    `\nCheckpoint save micro benchmark: one more segment saved (node ${process.version}, ${SAVES} samples)\n`,
  );
  console.log(
    `${'segments'.padEnd(10)}${'method'.padEnd(32)}${'median µs'.padStart(11)}${'p95 µs'.padStart(10)}${'≈bytes sent'.padStart(12)}`,
  );
  for (const r of rows) {
    console.log(
      `${String(r.size).padEnd(10)}${r.method.padEnd(32)}${r.medianUs.toFixed(0).padStart(11)}${r.p95Us.toFixed(0).padStart(10)}${(r.bytesPerSave ? String(r.bytesPerSave) : '-').padStart(12)}`,
    );
  }
  console.log('\nratio 1,000 segments / 10 segments (median):');
  for (const method of new Set(rows.map((r) => r.method))) {
    const small = rows.find((r) => r.method === method && r.size === 10)!;
    const large = rows.find((r) => r.method === method && r.size === 1_000)!;
    console.log(`  ${method.padEnd(30)} ×${(large.medianUs / small.medianUs).toFixed(2)}`);
  }

  // What a save costs per segment: the median append of one segment, at either job length.
  const saveUs = Math.max(...rows.filter((r) => r.method.startsWith('append-only')).map((r) => r.medianUs));
  const saveBytes = Math.max(
    ...rows.filter((r) => r.method.startsWith('append-only')).map((r) => r.bytesPerSave),
  );
  const rework = Array.from({ length: CRASH_AFTER }, (_, i) => {
    const k = i + 1;
    return { k, former: k - formerRun.durable[i]!, current: k - currentRun.durable[i]! };
  });
  const formerSaves = formerRun.saves / CRASH_AFTER;
  const currentSaves = currentRun.saves / CRASH_AFTER;
  const describe = (p: Policy) =>
    `${p.everySegments === 1 ? 'every segment' : `every ${p.everySegments ?? '∞'} segments`} or ${p.checkpointIntervalMs / 1000} s`;
  console.log(
    `\nRework after a crash: segments of whisper.cpp work redone (${SEGMENT_SECONDS} s each), ` +
      `former default (${describe(FORMER_POLICY)}) against now (${describe(currentPolicy)})\n`,
  );
  console.log(
    `${'crash after segment'.padEnd(21)}${'redone, former'.padStart(16)}${'redone, now'.padStart(13)}${'whisper s saved'.padStart(17)}`,
  );
  for (const r of rework) {
    console.log(
      `${String(r.k).padEnd(21)}${String(r.former).padStart(16)}${String(r.current).padStart(13)}${((r.former - r.current) * SEGMENT_SECONDS).toFixed(1).padStart(17)}`,
    );
  }
  const mean = (f: (r: (typeof rework)[number]) => number) =>
    rework.reduce((a, r) => a + f(r), 0) / rework.length;
  console.log(
    `${'mean'.padEnd(21)}${mean((r) => r.former)
      .toFixed(2)
      .padStart(16)}${mean((r) => r.current)
      .toFixed(2)
      .padStart(13)}${(mean((r) => r.former - r.current) * SEGMENT_SECONDS).toFixed(1).padStart(17)}`,
  );
  console.log(
    `\nRedis per segment: former ${formerSaves.toFixed(2)} saves (≈${(formerSaves * saveUs).toFixed(0)} µs, ` +
      `${(formerSaves * saveBytes).toFixed(0)} B), now ${currentSaves.toFixed(2)} saves (≈${(currentSaves * saveUs).toFixed(0)} µs, ` +
      `${(currentSaves * saveBytes).toFixed(0)} B); one save: median ${saveUs.toFixed(0)} µs, ≈${saveBytes} B sent`,
  );
  console.log(
    `extra Redis time per segment ≈${((currentSaves - formerSaves) * saveUs).toFixed(0)} µs against ` +
      `${(mean((r) => r.former - r.current) * SEGMENT_SECONDS).toFixed(1)} s of whisper.cpp work not redone per crash, on average`,
  );

  console.log(`\n${((performance.now() - started) / 1000).toFixed(1)} s`);
  mkdirSync(projectPath('bench', 'results'), { recursive: true });
  writeFileSync(
    projectPath('bench', 'results', 'checkpoint.json'),
    JSON.stringify(
      {
        node: process.version,
        rows,
        rework: {
          segment_seconds: SEGMENT_SECONDS,
          former_policy: FORMER_POLICY,
          current_policy: currentPolicy,
          crashes: rework,
          saves_per_segment: { former: formerSaves, current: currentSaves },
          save_median_us: saveUs,
        },
      },
      null,
      2,
    ),
  );
  console.log('wrote bench/results/checkpoint.json');
}

type Policy = { checkpointIntervalMs: number; everySegments: number | null };

interface PolicyRun {
  /** After each of the first CRASH_AFTER segments: how many segments are durable. */
  durable: number[];
  /** Saves during those segments. */
  saves: number;
}

/** Runs a job of CRASH_AFTER + 1 segments through the pipeline's save rule under `policy`, on a manual clock. */
async function runPolicy(redis: Redis, policy: Policy): Promise<PolicyRun> {
  const clock = new ManualClock();
  const checkpoints = new CheckpointManager({ redis, prefix: PREFIX, clock, ...policy });
  const jobId = `rework-${policy.everySegments}-${policy.checkpointIntervalMs}`;
  const total = CRASH_AFTER + 1;
  const done: Segment[] = [];
  const save = (segmentIndex: number) =>
    checkpoints.saveCheckpoint({
      jobId,
      stage: segmentIndex < 0 ? 'validate' : 'transcribe',
      progress: 0.5,
      segmentIndex,
      data: { segments: done, metadata },
    });
  await save(-1);
  const durable: number[] = [];
  let saved = 0;
  let saves = 0;
  for (let i = 0; i < total; i++) {
    clock.advance(SEGMENT_SECONDS * 1000);
    done.push(segment(i));
    if (i === total - 1 || checkpoints.shouldSave(jobId, i)) {
      await save(i);
      saved = i + 1;
      if (i < CRASH_AFTER) saves++;
    }
    durable.push(saved);
  }
  // The last segment always saves; the crashes studied come before it.
  return { durable: durable.slice(0, CRASH_AFTER), saves };
}

function row(size: number, method: string, times: number[], bytesPerSave: number): Row {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 1000;
  return { size, method, medianUs: at(0.5), p95Us: at(0.95), bytesPerSave };
}

async function deletePrefix(redis: Redis): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

await main();
