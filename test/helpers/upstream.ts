// A real HTTP upstream on an ephemeral loopback port, whose behaviour a test can switch:
// healthy, failing with a status, slow, or gone. Requests with a body get their byte count back.
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type UpstreamMode =
  | { kind: 'ok' }
  | { kind: 'status'; status: number }
  | { kind: 'slow'; delayMs: number };

export interface TestUpstream {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  mode: UpstreamMode;
  /** Requests that reached the handler. */
  hits: number;
  lastHeaders: IncomingHttpHeaders | null;
  lastUrl: string | null;
  close(): Promise<void>;
  /** Listens again on the same port after close (an upstream restart). */
  restart(): Promise<void>;
}

export async function startUpstream(port = 0): Promise<TestUpstream> {
  const server = createServer((req, res) => {
    up.hits++;
    up.lastHeaders = req.headers;
    up.lastUrl = req.url ?? null;
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on('end', () => {
      const mode = up.mode;
      const reply = (status: number): void => {
        const body = JSON.stringify({ path: req.url, method: req.method, bytes });
        res.writeHead(status, { 'content-type': 'application/json', 'x-upstream': 'yes' });
        res.end(body);
      };
      if (mode.kind === 'status') reply(mode.status);
      else if (mode.kind === 'slow') setTimeout(() => reply(200), mode.delayMs).unref();
      else reply(200);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const actual = (server.address() as AddressInfo).port;
  const up: TestUpstream = {
    server,
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    mode: { kind: 'ok' },
    hits: 0,
    lastHeaders: null,
    lastUrl: null,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
    async restart() {
      server.listen(actual, '127.0.0.1');
      await once(server, 'listening');
    },
  };
  return up;
}
