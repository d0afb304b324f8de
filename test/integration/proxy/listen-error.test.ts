// startProxy when a listener cannot bind: it rejects with a ListenError that names the address and the
// policy key, and it lets go of what it had opened (the data listener, when the admin port is the taken one).
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isListenError, type ListenError } from '../../../proxy/listen.js';
import { startProxy } from '../../../proxy/main.js';
import { type PolicyDoc, tempDir, writePolicy } from '../../helpers/proxy.js';

const POLICY: PolicyDoc = {
  version: 1,
  upstreams: { api: { url: 'http://127.0.0.1:9' } },
  routes: [{ name: 'all', match: { path: '/*' }, upstream: 'api' }],
};

async function bound(port = 0): Promise<Server> {
  const server = createServer().listen(port, '127.0.0.1');
  await once(server, 'listening');
  return server;
}
const portOf = (server: Server): number => (server.address() as { port: number }).port;

describe('startProxy on a taken port', () => {
  let dir: string;
  let holder: Server;

  beforeAll(async () => {
    dir = await tempDir('listen-error');
    holder = await bound();
  });

  afterAll(async () => {
    holder.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function startFailure(doc: PolicyDoc): Promise<ListenError> {
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, { ...POLICY, ...doc });
    const err = await startProxy({ configFile: file, watch: false }).then(
      () => expect.fail('startProxy resolved on a taken port'),
      (e: unknown) => e,
    );
    expect(isListenError(err)).toBe(true);
    return err as ListenError;
  }

  it('names the data address and `listen`', async () => {
    const err = await startFailure({ listen: `127.0.0.1:${portOf(holder)}` });
    expect(err).toMatchObject({
      code: 'listen_failed',
      errno: 'EADDRINUSE',
      setting: 'listen',
      address: `127.0.0.1:${portOf(holder)}`,
    });
  });

  it('names the admin address and `admin.listen`, and frees the data port it had bound', async () => {
    // A port known to be free a moment ago, so the test can tell afterwards whether it was let go.
    const probe = await bound();
    const dataPort = portOf(probe);
    await new Promise((r) => probe.close(r));

    const err = await startFailure({
      listen: `127.0.0.1:${dataPort}`,
      admin: { listen: `127.0.0.1:${portOf(holder)}` },
    });
    expect(err).toMatchObject({ errno: 'EADDRINUSE', setting: 'admin.listen' });
    const again = await bound(dataPort);
    again.close();
  });
});
