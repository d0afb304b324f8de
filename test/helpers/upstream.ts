// A real HTTP upstream on an ephemeral loopback port, whose behaviour a test can switch:
// healthy, failing with a status, slow, holding its answers until released, or anything a custom
// handler does. Requests with a body get their byte count back. Upgrades (WebSocket-style) are
// accepted with a 101 and echoed.
import { once } from 'node:events';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type UpstreamMode =
  | { kind: 'ok' }
  | { kind: 'status'; status: number }
  | { kind: 'slow'; delayMs: number }
  /** Answers nothing until release(): for in-flight requests that a test controls. */
  | { kind: 'hold' }
  /** Answers however `handle` does; the body has been read, `bytes` long. */
  | { kind: 'custom'; handle: (req: IncomingMessage, res: ServerResponse, bytes: number) => void };

export interface TestUpstream {
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  mode: UpstreamMode;
  /** Requests that reached the handler. */
  hits: number;
  /** Upgrade requests that reached the server. */
  upgrades: number;
  /** Requests whose connection closed before their response was complete. */
  aborted: number;
  /** Body bytes received over all requests. */
  bytesReceived: number;
  lastHeaders: IncomingHttpHeaders | null;
  lastRawHeaders: string[] | null;
  lastUrl: string | null;
  /** Requests waiting in hold mode. */
  readonly held: number;
  /** Answers up to `n` held requests (all by default) with `status`; returns how many it released. */
  release(n?: number, status?: number): number;
  close(): Promise<void>;
  /** Listens again on the same port after close (an upstream restart). */
  restart(): Promise<void>;
}

export async function startUpstream(port = 0): Promise<TestUpstream> {
  const held: ((status: number) => void)[] = [];
  // Upgraded sockets leave the HTTP server's bookkeeping; close() must still end them.
  const tunnels = new Set<Socket>();
  const server = createServer((req, res) => {
    up.hits++;
    up.lastHeaders = req.headers;
    up.lastRawHeaders = req.rawHeaders;
    up.lastUrl = req.url ?? null;
    res.on('close', () => {
      if (!res.writableFinished) up.aborted++;
    });
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      up.bytesReceived += chunk.length;
    });
    req.on('end', () => {
      const mode = up.mode;
      const reply = (status: number): void => {
        if (res.destroyed) return;
        const body = JSON.stringify({ path: req.url, method: req.method, bytes });
        res.writeHead(status, { 'content-type': 'application/json', 'x-upstream': 'yes' });
        res.end(body);
      };
      if (mode.kind === 'status') reply(mode.status);
      else if (mode.kind === 'slow') setTimeout(() => reply(200), mode.delayMs).unref();
      else if (mode.kind === 'hold') held.push(reply);
      else if (mode.kind === 'custom') mode.handle(req, res, bytes);
      else reply(200);
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    up.upgrades++;
    up.lastHeaders = req.headers;
    up.lastUrl = req.url ?? null;
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: ' +
        (req.headers.upgrade ?? 'websocket') +
        '\r\nConnection: Upgrade\r\n\r\n',
    );
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
    tunnels.add(socket);
    socket.on('close', () => tunnels.delete(socket));
    socket.on('error', () => socket.destroy());
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
    upgrades: 0,
    aborted: 0,
    bytesReceived: 0,
    lastHeaders: null,
    lastRawHeaders: null,
    lastUrl: null,
    get held() {
      return held.length;
    },
    release(n = Number.POSITIVE_INFINITY, status = 200) {
      const batch = held.splice(0, Math.min(n, held.length));
      for (const reply of batch) reply(status);
      return batch.length;
    },
    async close() {
      held.length = 0;
      for (const s of tunnels) s.destroy();
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
