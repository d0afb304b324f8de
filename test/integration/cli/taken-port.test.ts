// What a user sees when a port is taken or a flag is not a port: one line on stderr naming the
// address and what to change, exit 1, and no stack trace. The commands run as child processes against a
// port this test really holds.
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PolicyDoc, runCli, tempDir, writePolicy } from '../../helpers/proxy.js';

/** Whether anything accepts a TCP connection on 127.0.0.1:port. */
async function answers(port: number): Promise<boolean> {
  const socket = connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

const POLICY: PolicyDoc = {
  version: 1,
  upstreams: { api: { url: 'http://127.0.0.1:9' } },
  routes: [{ name: 'all', match: { path: '/*' }, upstream: 'api' }],
};

describe('a taken port', () => {
  let dir: string;
  let holder: Server;
  let taken: number;

  beforeAll(async () => {
    dir = await tempDir('taken-port');
    holder = createServer().listen(0, '127.0.0.1');
    await once(holder, 'listening');
    taken = (holder.address() as { port: number }).port;
  });

  afterAll(async () => {
    holder.close();
    await rm(dir, { recursive: true, force: true });
  });

  const policyWith = async (name: string, doc: PolicyDoc): Promise<string> => {
    const file = join(dir, `${name}.yaml`);
    await writePolicy(file, { ...POLICY, ...doc });
    return file;
  };

  it('floodgate proxy names the data address and the listen setting', async () => {
    const file = await policyWith('data', { listen: `127.0.0.1:${taken}` });
    const r = await runCli(['proxy', '--config', file], { FLOODGATE_TEST_WORKERS: undefined });
    expect(r.stderr).toBe(
      `floodgate proxy: 127.0.0.1:${taken} is already in use (another floodgate?); stop it or change listen in ${file}\n`,
    );
    expect(r.code).toBe(1);
  });

  it('floodgate proxy names the admin address and admin.listen', async () => {
    const file = await policyWith('admin', { admin: { listen: `127.0.0.1:${taken}` } });
    const r = await runCli(['proxy', '--config', file], { FLOODGATE_TEST_WORKERS: undefined });
    expect(r.stderr).toBe(
      `floodgate proxy: 127.0.0.1:${taken} is already in use (another floodgate?); stop it or change admin.listen in ${file}\n`,
    );
    expect(r.code).toBe(1);
  });

  it("a cluster's primary says the same of its admin listener", async () => {
    const file = await policyWith('cluster', { workers: 2, admin: { listen: `127.0.0.1:${taken}` } });
    const r = await runCli(['proxy', '--config', file]);
    expect(r.stderr).toBe(
      `floodgate proxy: 127.0.0.1:${taken} is already in use (another floodgate?); stop it or change admin.listen in ${file}\n`,
    );
    expect(r.code).toBe(1);
  });

  // `up` needs Redis for its backend (127.0.0.1:6379 in this project's tests), and a model path that does
  // not exist, so that it neither downloads one nor waits for one.
  const upEnv = (port: number) => ({
    PORT: String(port),
    HOST: '127.0.0.1',
    REDIS_URL: 'redis://127.0.0.1:6379',
    // The backend's own key space, never the `floodgate:` of a developer's stack on the same Redis.
    REDIS_PREFIX: `floodgate-test:taken-port-${process.pid}:`,
    DATA_DIR: join(dir, 'data'),
    WHISPER_MODEL: join(dir, 'no-model.bin'),
    FLOODGATE_STORE: 'memory',
  });

  it("floodgate up names the proxy's address when the proxy's port is taken", async () => {
    const file = await policyWith('up', { listen: `127.0.0.1:${taken}` });
    const r = await runCli(['up', '--config', file], upEnv(0));
    expect(r.stderr).toBe(
      `floodgate up: 127.0.0.1:${taken} is already in use (another floodgate?); stop it or change listen in ${file}\n`,
    );
    expect(r.code).toBe(1);
  });

  it("floodgate up names the backend's address and PORT when the backend's port is taken", async () => {
    const file = await policyWith('up-backend', {});
    const r = await runCli(['up', '--config', file], upEnv(taken));
    expect(r.stderr).toBe(
      `floodgate up: 127.0.0.1:${taken} (the backend) is already in use (another floodgate or backend?); stop it or set PORT\n`,
    );
    expect(r.code).toBe(1);
  });

  it('floodgate up stops the private redis-server it started when the proxy cannot listen', async () => {
    const file = await policyWith('up-private-redis', { listen: `127.0.0.1:${taken}` });
    const dataDir = join(dir, 'private-redis-data');
    // A closed port for REDIS_URL: nothing answers there, so up starts a redis-server of its own.
    const closed = createServer().listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const r = await runCli(['up', '--config', file], {
      ...upEnv(0),
      DATA_DIR: dataDir,
      REDIS_URL: `redis://127.0.0.1:${closedPort}`,
    });
    // The start-up log line names the private server's address (redis-server retitles its process, so
    // it is found by its port, not its command line).
    const own = /"redis":"redis:\/\/127\.0\.0\.1:(\d+)"/.exec(r.stdout);
    expect(own).not.toBeNull();
    expect(r.stderr).toBe(
      `floodgate up: 127.0.0.1:${taken} is already in use (another floodgate?); stop it or change listen in ${file}\n`,
    );
    expect(r.code).toBe(1);
    expect(await answers(Number(own![1]))).toBe(false);
  });

  it('floodgate up names a bad setting in one line, before anything starts', async () => {
    const file = await policyWith('up-setting', {});
    const r = await runCli(['up', '--config', file], { ...upEnv(0), PORT: 'abc' });
    expect(r.stderr).toBe('floodgate up: PORT: must be a whole number; got "abc"\n');
    expect(r.code).toBe(1);
  });

  it('floodgate backend says so in one line', async () => {
    const r = await runCli(['backend', '--port', String(taken)], upEnv(taken));
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`127.0.0.1:${taken}`);
    expect(r.stderr).toContain('EADDRINUSE');
    expect(r.code).toBe(1);
  });
});

describe('floodgate backend --port', () => {
  it.each(['abc', '-1', '70000', '8.5'])('rejects %s with a clean message', async (value) => {
    const r = await runCli(['backend', '--port', value]);
    expect(r.stderr.split('\n')[0]).toBe(
      `error: option '--port <n>' argument '${value}' is invalid. expected a port number from 0 to 65535, got '${value}'`,
    );
    expect(r.stderr).not.toMatch(/ERR_|node:internal|\s{4}at /);
    expect(r.code).toBe(1);
  });
});
