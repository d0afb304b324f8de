// Micro benchmark of CheckpointManager.saveCheckpoint: the cost of one save (one more segment
// completed) for a job that already holds 10 segments and for one that holds 1,000. Saves append
// only the new segments, so the two should cost about the same; the naive way (rewrite every
// segment in one JSON value per save) is measured beside it as the baseline that grows with the job.
// Ratios within one run matter, not absolute numbers (STYLE rule 12).
//
//   npx tsx bench/micro/checkpoint.ts        (REDIS_URL, default redis://127.0.0.1:6379; ~10 s)
//
// Prints a table and writes bench/results/checkpoint.json.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { CheckpointManager } from '../../backend/jobs/checkpoints.js';
import { projectPath } from '../../core/paths.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const SIZES = [10, 1_000] as const;
const SAVES = 300;
const WARMUP = 30;
const PREFIX = `fgbench:ckpt:${randomBytes(4).toString('hex')}:`;

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
  console.log(`\n${((performance.now() - started) / 1000).toFixed(1)} s`);
  mkdirSync(projectPath('bench', 'results'), { recursive: true });
  writeFileSync(
    projectPath('bench', 'results', 'checkpoint.json'),
    JSON.stringify({ node: process.version, rows }, null, 2),
  );
  console.log('wrote bench/results/checkpoint.json');
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
