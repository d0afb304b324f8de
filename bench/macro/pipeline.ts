// The backend's end-to-end cost against whisper.cpp alone: the same audio through
// POST /transcribe → completed (normalize, probe, silence detection, cuts, one whisper process per
// segment, checkpoints), and through one whisper.cpp run on the whole normalized file. Runs alternate
// so the ratio holds on a noisy machine. Uses the generated tiny model (real weights cannot be
// fetched here); with a real model, whisper's own time dominates and the ratio moves toward 1.
//
//   npx tsx bench/macro/pipeline.ts [--seconds 180] [--rounds 3]
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { startBackend } from '../../backend/main.js';
import { normalize } from '../../backend/media/ffmpeg.js';
import { locateWhisperBinary, whisperCppArgs } from '../../backend/media/whisper.js';
import { backendSettingsFromEnv } from '../../backend/settings.js';
import { createLogger } from '../../core/logger.js';
import { runProcess } from '../../core/process.js';
import { tonePattern } from '../../test/helpers/audio.js';
import { tinyGgmlModelPath } from '../../test/helpers/ggml-model.js';
import { REDIS_URL, uniquePrefix } from '../../test/helpers/redis.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '180' }, rounds: { type: 'string', default: '3' } },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const THREADS = 2;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const work = await mkdtemp(join(tmpdir(), 'fg-bench-pipeline-'));
const model = await tinyGgmlModelPath();
const input = await tonePattern(join(work, 'input.wav'), { totalSec: seconds });
const wav = join(work, 'normalized.wav');
await normalize(input, wav);
const audio = await readFile(input);

const dataDir = join(work, 'data');
await mkdir(dataDir);
const settings = backendSettingsFromEnv({
  PORT: '0',
  HOST: '127.0.0.1',
  BACKEND_ROLE: 'all',
  REDIS_URL,
  DATA_DIR: dataDir,
  WHISPER_MODEL: model,
  WHISPER_THREADS: String(THREADS),
  WHISPER_FAST_DECODE: '1',
  REDIS_PREFIX: uniquePrefix('bench-pipeline'),
});
const backend = await startBackend(settings, {
  logger: createLogger('bench', { write: () => true } as never),
  defaultMetrics: false,
});
const base = `http://127.0.0.1:${backend.port}`;

async function viaPipeline(): Promise<number> {
  const started = performance.now();
  const r = await request(`${base}/transcribe`, {
    method: 'POST',
    headers: { 'content-type': 'audio/wav' },
    body: audio,
  });
  const { job_id } = (await r.body.json()) as { job_id: string };
  for (;;) {
    const s = await request(`${base}/status/${job_id}`);
    const status = (await s.body.json()) as { state: string; error: unknown };
    if (status.state === 'completed') break;
    if (status.state === 'failed') throw new Error(`job failed: ${JSON.stringify(status.error)}`);
    await new Promise((res) => setTimeout(res, 20));
  }
  return performance.now() - started;
}

async function direct(): Promise<number> {
  const started = performance.now();
  const args = whisperCppArgs({ model, threads: THREADS, fastDecode: true }, wav, join(work, 'direct'), 'en');
  await runProcess(locateWhisperBinary(), args);
  return performance.now() - started;
}

const pipelineMs: number[] = [];
const directMs: number[] = [];
try {
  await direct(); // warm the page cache and the binary
  for (let i = 0; i < rounds; i++) {
    pipelineMs.push(await viaPipeline());
    directMs.push(await direct());
  }
} finally {
  await backend.shutdown();
}
const result = {
  audio_seconds: seconds,
  pipeline_ms: pipelineMs.map(Math.round),
  direct_ms: directMs.map(Math.round),
  ratio: Math.round((median(pipelineMs) / median(directMs)) * 100) / 100,
};
console.log(
  `pipeline ${Math.round(median(pipelineMs))} ms vs whisper.cpp direct ${Math.round(median(directMs))} ms ` +
    `on ${seconds} s of audio → ratio ${result.ratio} (medians of ${rounds})`,
);
await mkdir('bench/results', { recursive: true });
await writeFile('bench/results/pipeline.json', JSON.stringify(result, null, 2));
await rm(work, { recursive: true, force: true });
process.exit(0);
