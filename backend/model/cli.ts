// `floodgate model download NAME`: the download with a progress bar, and a plain answer on failure.
import { join } from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import { downloadModel, isModelDownloadError } from './download.js';

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
