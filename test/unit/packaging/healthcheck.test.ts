// The images' HEALTHCHECK command (cli/healthcheck.ts), run as the images run it but from source:
// exit 0 on a 2xx from /healthz, 1 on any other status or when nothing answers.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../helpers/proxy.js';

let status = 200;
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

async function check(target: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/healthcheck.ts', target], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr };
}

describe('cli/healthcheck.ts', () => {
  it('exits 0 when /healthz answers 200', async () => {
    status = 200;
    expect(await check(url)).toEqual({ code: 0, stderr: '' });
  });

  it('exits 1 on a 5xx, saying what it got', async () => {
    status = 503;
    const r = await check(url);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('answered 503');
  });

  it('exits 1 when nothing listens', async () => {
    const free = createServer();
    free.listen(0, '127.0.0.1');
    await once(free, 'listening');
    const port = (free.address() as AddressInfo).port;
    await new Promise((r) => free.close(r));
    const r = await check(`http://127.0.0.1:${port}/healthz`);
    expect(r.code).toBe(1);
  });
});
