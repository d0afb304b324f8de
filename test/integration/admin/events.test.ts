// The dashboard's live feed under hostile viewers, over real sockets: the proxy holds at most 32
// streams and answers the next viewer 503 JSON until one leaves; and a viewer that stops reading is
// disconnected once its backlog passes the bound, while one that reads keeps getting snapshots.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Dashboard } from '../../../proxy/http/dashboard/dashboard.js';
import type { DashboardSnapshot } from '../../../proxy/http/dashboard/snapshot.js';
import { startTestProxy, type TestProxy } from '../../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../../helpers/upstream.js';
import { waitFor } from '../../helpers/wait.js';
import { parseAnswer, type RawAnswer } from './raw-http.js';

interface Stream {
  socket: Socket;
  answer: RawAnswer;
  /** Bytes received so far after the response head. */
  received(): number;
}

/**
 * Opens GET /admin/events on a raw socket and resolves once the server has answered: for a stream,
 * when the `retry:` line has arrived (the server holds it as a viewer by then); otherwise with the
 * whole error body.
 */
function openStream(port: number): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setEncoding('latin1');
    let text = '';
    let bytes = 0;
    let done = false;
    const onData = (d: string): void => {
      // Past the answer only the count is kept: a reader may be sent megabytes.
      if (done) {
        bytes += d.length;
        return;
      }
      text += d;
      if (!text.includes('\r\n\r\n')) return;
      const answer = parseAnswer(text);
      const length = Number(answer.headers['content-length'] ?? Number.NaN);
      if (answer.status === 200 ? !answer.body.includes('retry:') : answer.body.length < length) return;
      done = true;
      bytes = answer.body.length;
      resolve({ socket, answer, received: () => bytes });
    };
    socket.on('data', onData);
    socket.on('error', (err) => {
      if (!done) reject(err);
    });
    socket.write(`GET /admin/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  });
}

describe('the proxy’s feed holds at most 32 viewers', () => {
  let upstream: TestUpstream;
  let p: TestProxy;
  const streams: Stream[] = [];

  beforeAll(async () => {
    upstream = await startUpstream();
    p = await startTestProxy({
      version: 1,
      upstreams: { svc: { url: upstream.url } },
      routes: [{ name: 'svc', match: { path: '/svc/*' }, upstream: 'svc' }],
    });
  });
  afterAll(async () => {
    for (const s of streams) s.socket.destroy();
    await p?.close();
    await upstream?.close();
  });

  it('answers the 33rd viewer 503 JSON, and takes a new one once a viewer leaves', async () => {
    const port = Number(new URL(p.admin).port);
    for (let i = 0; i < 32; i++) {
      const s = await openStream(port);
      streams.push(s);
      expect(s.answer.status, `viewer ${i + 1}`).toBe(200);
    }
    const refused = await openStream(port);
    refused.socket.destroy();
    expect(refused.answer.status).toBe(503);
    expect(refused.answer.headers['content-type']).toBe('application/json');
    expect(JSON.parse(refused.answer.body)).toEqual({ error: expect.stringContaining('32') });

    streams.shift()!.socket.destroy();
    // The server learns of the close asynchronously; until then the answer is still 503.
    const next = await waitFor(
      async () => {
        const s = await openStream(port);
        if (s.answer.status === 200) return s;
        s.socket.destroy();
        return null;
      },
      { timeoutMs: 10_000, what: 'a free viewer slot' },
    );
    streams.push(next);
    expect(streams).toHaveLength(32);
  });
});

describe('a viewer that stops reading', () => {
  // Big, frequent snapshots fill the kernel's socket buffers in well under a second.
  const FRAME_BYTES = 64 * 1024;
  const FRAME = { sampled_at: 0, padding: 'x'.repeat(FRAME_BYTES) } as unknown as DashboardSnapshot;
  let dashboard: Dashboard;
  let server: Server;
  let port: number;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    dashboard = new Dashboard({ token: () => null, snapshot: async () => FRAME, intervalMs: 10 });
    server = createServer(dashboard.events);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterEach(() => {
    for (const s of sockets) s.destroy();
  });
  afterAll(async () => {
    dashboard.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('is disconnected once its backlog passes the bound; a reading viewer is not', async () => {
    const reader = await openStream(port);
    const stalled = await openStream(port);
    sockets.push(reader.socket, stalled.socket);
    stalled.socket.pause();
    expect(dashboard.viewers).toBe(2);

    await waitFor(() => dashboard.viewers === 1, {
      timeoutMs: 15_000,
      what: 'the stalled viewer to be dropped',
    });
    // The one left is the reader: it keeps receiving frames after the drop.
    const before = reader.received();
    await waitFor(() => reader.received() > before + FRAME_BYTES, {
      timeoutMs: 10_000,
      what: 'the reader to get more frames',
    });
    // The stalled socket was closed by the server: reading what is left ends it.
    const closed = once(stalled.socket, 'close');
    stalled.socket.resume();
    await closed;
  });
});
