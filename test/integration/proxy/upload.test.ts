// Bodies pass through the proxy without being held in memory: a 1 GiB upload (chunked, and with
// Content-Length) is read to an unlinked temporary file, then reaches the upstream whole, with its
// length, while the proxy process's peak RSS stays flat; max_body is enforced on the declared length
// and, for chunked bodies, while the body arrives.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProxy, spawnProxy, tempDir, writePolicy } from '../../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';

const GIB = 1024 ** 3;
const CHUNK = 1024 * 1024;
const MAX_BODY = 64 * 1024;
const MIB = 1024 * 1024;
/**
 * Memory bounds for the proxy process. Under tsx it starts at ~110 MiB and peaks at ~160-190 MiB while
 * streaming; a body held in memory would add 1 GiB. The ceiling leaves room for GC timing on a loaded
 * machine; the growth bound is what "flat" means here.
 */
const RSS_CEILING = 240 * MIB;
const RSS_GROWTH = 128 * MIB;

/** `total` bytes in `chunkSize` pieces, generated as they are asked for. */
function generated(total: number, chunkSize = CHUNK): Readable {
  const chunk = Buffer.alloc(chunkSize, 0x61);
  async function* pieces(): AsyncGenerator<Buffer> {
    let left = total;
    while (left > 0) {
      const n = Math.min(left, chunkSize);
      yield n === chunkSize ? chunk : chunk.subarray(0, n);
      left -= n;
    }
  }
  return Readable.from(pieces(), { objectMode: false });
}

/** Peak resident set size (VmHWM) of a process, in bytes. */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

describe('streaming uploads through a proxy process', () => {
  let upstream: TestUpstream;
  let dir: string;
  let proxy: ChildProxy;
  let baseline: number;

  beforeAll(async () => {
    upstream = await startUpstream();
    dir = await tempDir('upload');
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, {
      version: 1,
      upstreams: { app: { url: upstream.url, timeouts: { connect: '2s', response: '60s', idle: '30s' } } },
      routes: [
        { name: 'upload', match: { path: '/upload', methods: ['POST'] }, upstream: 'app' },
        {
          name: 'capped',
          match: { path: '/capped', methods: ['POST'] },
          upstream: 'app',
          max_body: MAX_BODY,
        },
      ],
    });
    proxy = await spawnProxy(file);
    baseline = await peakRss(proxy.pid);
  });

  afterAll(async () => {
    await proxy?.kill();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['chunked', false],
    ['content-length', true],
  ] as const)('passes 1 GiB (%s) to the upstream with flat memory', async (_kind, declared) => {
    const headers: Record<string, string> = declared ? { 'content-length': String(GIB) } : {};
    const before = upstream.bytesReceived;
    const r = await request(`${proxy.url}/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', ...headers },
      body: generated(GIB),
    });
    expect(r.statusCode).toBe(200);
    expect(await r.body.json()).toEqual({ path: '/upload', method: 'POST', bytes: GIB });
    expect(upstream.bytesReceived - before).toBe(GIB);
    // Read whole before it is sent on, a chunked body reaches the upstream with its length.
    expect(upstream.lastHeaders!['content-length']).toBe(String(GIB));
    expect(upstream.lastHeaders!['transfer-encoding']).toBeUndefined();
    const peak = await peakRss(proxy.pid);
    expect(peak).toBeLessThan(RSS_CEILING);
    expect(peak - baseline).toBeLessThan(RSS_GROWTH);
  });

  it('answers 413 for a declared Content-Length over max_body, without calling the upstream', async () => {
    const hits = upstream.hits;
    const r = await request(`${proxy.url}/capped`, {
      method: 'POST',
      headers: { 'content-length': String(MAX_BODY + 1) },
      body: Buffer.alloc(MAX_BODY + 1, 0x62),
    });
    expect(r.statusCode).toBe(413);
    expect(await r.body.text()).toBe(`{"error":"Payload too large","max_body":${MAX_BODY}}`);
    expect(upstream.hits).toBe(hits);
  });

  it('answers 413 when a chunked body passes max_body mid-stream', async () => {
    const r = await request(`${proxy.url}/capped`, {
      method: 'POST',
      body: generated(4 * MAX_BODY, 8 * 1024),
    });
    expect(r.statusCode).toBe(413);
    expect(await r.body.text()).toBe(`{"error":"Payload too large","max_body":${MAX_BODY}}`);
  });

  it('passes a body of exactly max_body, chunked or not', async () => {
    for (const headers of [{}, { 'content-length': String(MAX_BODY) }]) {
      const r = await request(`${proxy.url}/capped`, {
        method: 'POST',
        headers,
        body: generated(MAX_BODY, 8 * 1024),
      });
      expect(r.statusCode).toBe(200);
      expect(await r.body.json()).toMatchObject({ bytes: MAX_BODY });
    }
  });
});
