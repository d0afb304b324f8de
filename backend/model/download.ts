// Fetches a ggml model over HTTP, hashing while it streams to a .part file; only a file whose
// SHA-1 matches the catalog is renamed into place, so a partial or corrupt model never loads.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fetch } from 'undici';
import { FloodgateError, hasBrand } from '../../core/errors.js';
import { MODEL_BASE_URL, MODEL_SHA1, modelFileName } from './catalog.js';

export type ModelDownloadErrorCode = 'unknown_model' | 'http_error' | 'checksum_mismatch';

export class ModelDownloadError extends FloodgateError<ModelDownloadErrorCode> {
  constructor(code: ModelDownloadErrorCode, message: string) {
    super('ModelDownloadError', code, message);
  }
}

export function isModelDownloadError(err: unknown): err is ModelDownloadError {
  return hasBrand(err, 'ModelDownloadError');
}

export interface DownloadOptions {
  readonly dir: string;
  readonly baseUrl?: string;
  /** Name → SHA-1; tests pass their own. */
  readonly catalog?: Readonly<Record<string, string>>;
  /** Called as bytes arrive; `total` is null when the server sends no length. */
  readonly onProgress?: (received: number, total: number | null) => void;
  readonly signal?: AbortSignal;
}

export interface DownloadResult {
  readonly path: string;
  readonly bytes: number;
  readonly sha1: string;
  /** False when a verified file was already there. */
  readonly downloaded: boolean;
}

export async function sha1OfFile(path: string): Promise<string> {
  const hash = createHash('sha1');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function downloadModel(name: string, o: DownloadOptions): Promise<DownloadResult> {
  const catalog = o.catalog ?? MODEL_SHA1;
  const expected = catalog[name];
  if (expected === undefined) {
    throw new ModelDownloadError(
      'unknown_model',
      `unknown model "${name}"; choose one of: ${Object.keys(catalog).join(', ')}`,
    );
  }
  await mkdir(o.dir, { recursive: true });
  const path = join(o.dir, modelFileName(name));
  const existing = await stat(path).catch(() => null);
  if (existing && (await sha1OfFile(path)) === expected) {
    return { path, bytes: existing.size, sha1: expected, downloaded: false };
  }

  const url = `${o.baseUrl ?? MODEL_BASE_URL}/${modelFileName(name)}`;
  // fetch follows the hub's redirect to its CDN.
  const res = await fetch(url, { signal: o.signal ?? null });
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel();
    throw new ModelDownloadError('http_error', `GET ${url} answered ${res.status}`);
  }
  const lengthHeader = res.headers.get('content-length');
  const total = lengthHeader === null ? null : Number(lengthHeader);
  const hash = createHash('sha1');
  let received = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      received += chunk.length;
      o.onProgress?.(received, total);
      cb(null, chunk);
    },
  });
  const part = `${path}.part`;
  try {
    await pipeline(Readable.fromWeb(res.body), meter, createWriteStream(part), { signal: o.signal });
    const sha1 = hash.digest('hex');
    if (sha1 !== expected) {
      throw new ModelDownloadError(
        'checksum_mismatch',
        `checksum mismatch for ${name}: expected sha1 ${expected}, got ${sha1}`,
      );
    }
    await rename(part, path);
    return { path, bytes: received, sha1, downloaded: true };
  } finally {
    await rm(part, { force: true });
  }
}
