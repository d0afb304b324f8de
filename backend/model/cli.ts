// `floodgate model download NAME`: the download with a progress bar, and a plain answer on failure.
// `floodgate model tiny-test`: the generated offline model, written where the backend looks.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import { downloadModel, isModelDownloadError } from './download.js';
import { buildTinyGgmlModel } from './tiny-model.js';

export function defaultModelDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DATA_DIR ?? '.data', 'models');
}

export async function runModelDownload(name: string, dir = defaultModelDir()): Promise<number> {
  const bar = new SingleBar(
    { format: `${name} [{bar}] {percentage}% | {value}/{total} MiB | ETA {eta_formatted}`, hideCursor: true },
    Presets.shades_classic,
  );
  let started = false;
  const mib = (n: number): number => Math.round((n / 1048576) * 10) / 10;
  try {
    const r = await downloadModel(name, {
      dir,
      onProgress: (received, total) => {
        if (!started) {
          bar.start(total === null ? 0 : mib(total), 0);
          started = true;
        }
        bar.update(mib(received));
      },
    });
    if (started) bar.stop();
    process.stdout.write(
      r.downloaded
        ? `saved ${r.path} (sha1 ${r.sha1} verified)\n`
        : `${r.path} is already there and verified\n`,
    );
    return 0;
  } catch (err) {
    if (started) bar.stop();
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    const message = isModelDownloadError(err)
      ? err.message
      : `${(err as Error).message}${cause ? ` (${cause})` : ''}; is this machine online?`;
    process.stderr.write(`floodgate model download: ${message}\n`);
    return 1;
  }
}

/** The file `floodgate model tiny-test` writes under its directory. */
export const TINY_TEST_MODEL_FILE = 'ggml-tiny-test.bin';

/**
 * Writes the tiny random-weight model (about 8 MB, no network) and says how to run a job with it. It
 * transcribes audio into random words: enough to watch a job go through every stage, nothing more.
 */
export async function runTinyTestModel(dir = defaultModelDir()): Promise<number> {
  const path = resolve(dir, TINY_TEST_MODEL_FILE);
  try {
    await mkdir(dir, { recursive: true });
    // Written whole or not at all: the backend may be reading WHISPER_MODEL already.
    const tmp = `${path}.${process.pid}.part`;
    await writeFile(tmp, buildTinyGgmlModel());
    await rename(tmp, path);
  } catch (err) {
    process.stderr.write(`floodgate model tiny-test: cannot write ${path}: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(
    `saved ${path} (random weights: transcripts are random words)\n` +
      `run a job end to end with: WHISPER_MODEL=${path} WHISPER_FAST_DECODE=1 npm start\n`,
  );
  return 0;
}
