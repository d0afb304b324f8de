import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadModel, ModelDownloadError } from '../../../backend/model/download.js';

// A local file server stands in for the model hub: real HTTP, real streaming, real hashing.
const MODEL = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
const SHA1 = createHash('sha1').update(MODEL).digest('hex');
let server: Server;
let baseUrl: string;
let dir: string;
let requests = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests++;
    if (req.url === '/ggml-good.bin' || req.url === '/ggml-corrupt.bin') {
      const body =
        req.url === '/ggml-good.bin' ? MODEL : Buffer.concat([MODEL.subarray(1), Buffer.from([1])]);
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    } else if (req.url === '/ggml-moved.bin') {
      res.writeHead(302, { location: '/ggml-good.bin' });
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  dir = await mkdtemp(join(tmpdir(), 'fg-model-'));
});

afterAll(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

const catalog = { good: SHA1, corrupt: SHA1, missing: SHA1, moved: SHA1 };

describe('floodgate model download', () => {
  it('streams the model, reports progress, and verifies its checksum', async () => {
    const seen: number[] = [];
    const r = await downloadModel('good', { dir, baseUrl, catalog, onProgress: (n) => seen.push(n) });
    expect(r).toMatchObject({ bytes: MODEL.length, sha1: SHA1, downloaded: true });
    expect((await readFile(r.path)).equals(MODEL)).toBe(true);
    expect(seen.at(-1)).toBe(MODEL.length);
    expect(seen.length).toBeGreaterThan(1);
  });

  it('does not fetch again when a verified file is there', async () => {
    const before = requests;
    const r = await downloadModel('good', { dir, baseUrl, catalog });
    expect(r.downloaded).toBe(false);
    expect(requests).toBe(before);
  });

  it('follows redirects, as the model hub redirects to its CDN', async () => {
    const r = await downloadModel('moved', { dir, baseUrl, catalog });
    expect(r.sha1).toBe(SHA1);
  });

  it('rejects a file whose checksum does not match, and leaves nothing behind', async () => {
    const err = await downloadModel('corrupt', { dir, baseUrl, catalog }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelDownloadError);
    expect((err as ModelDownloadError).code).toBe('checksum_mismatch');
    expect(existsSync(join(dir, 'ggml-corrupt.bin'))).toBe(false);
    expect((await readdir(dir)).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it('replaces a corrupt file already on disk', async () => {
    await writeFile(join(dir, 'ggml-good.bin'), 'garbage');
    const r = await downloadModel('good', { dir, baseUrl, catalog });
    expect(r.downloaded).toBe(true);
  });

  it('names the known models when asked for an unknown one', async () => {
    const err = await downloadModel('huge', { dir, baseUrl, catalog }).catch((e: unknown) => e);
    expect((err as ModelDownloadError).code).toBe('unknown_model');
    expect((err as Error).message).toBe('unknown model "huge"; choose one of: good, corrupt, missing, moved');
  });

  it('reports an HTTP error status', async () => {
    const err = await downloadModel('missing', { dir, baseUrl, catalog }).catch((e: unknown) => e);
    expect((err as ModelDownloadError).code).toBe('http_error');
    expect((err as Error).message).toContain('answered 404');
  });

  it('knows the official models with their published SHA-1', async () => {
    const { MODEL_SHA1 } = await import('../../../backend/model/catalog.js');
    expect(MODEL_SHA1['base.en']).toBe('137c40403d78fd54d454da0f9bd998f78703390c');
    expect(Object.keys(MODEL_SHA1)).toContain('tiny.en');
  });
});
