// The tiny generated whisper model (backend/model/tiny-model.ts), cached in the OS temp dir for tests,
// because tests cannot download real weights.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildTinyGgmlModel,
  TINY_MODEL_GENERATOR_VERSION,
  type TinyModelOptions,
} from '../../backend/model/tiny-model.js';

export {
  buildTinyGgmlModel,
  type TinyModelOptions,
  tinyModelTensors,
  toHalf,
} from '../../backend/model/tiny-model.js';

/**
 * The path of the tiny model, generated on first use and shared by every test file (and run)
 * through a content-addressed name in the OS temp dir.
 */
export async function tinyGgmlModelPath(options: TinyModelOptions = {}): Promise<string> {
  const { state = 64, heads = 2, layers = 1, seed = 1 } = options;
  const key = createHash('sha256')
    .update(JSON.stringify({ v: TINY_MODEL_GENERATOR_VERSION, state, heads, layers, seed }))
    .digest('hex')
    .slice(0, 16);
  const dir = tmpdir();
  const path = join(dir, `floodgate-tiny-ggml-${key}.bin`);
  if (existsSync(path)) return path;
  await mkdir(dir, { recursive: true });
  // Write then rename: parallel test files may race here, and rename makes the file appear whole.
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, buildTinyGgmlModel({ state, heads, layers, seed }));
  await rename(tmp, path);
  return path;
}
