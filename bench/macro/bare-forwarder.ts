// The floor of any Node proxy on this machine: node:http in, undici's Pool.dispatch out, hop-by-hop
// headers dropped both ways, and nothing else (no routing, limits, breaker, forwarded-for headers,
// request ids, metrics or logs). The macro benchmark runs it as a system under test beside floodgate,
// so "floodgate / bare forwarder" is the price of everything floodgate adds to forwarding itself.
//
//   node dist/bench/macro/bare-forwarder.js UPSTREAM_URL   (compiled: bench/tsconfig.bare.json)
//
// Listens on a free loopback port, prints {"port":N} as one line, and exits when its stdin closes (the
// parent has gone), on SIGTERM, or on SIGINT.
import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { type Dispatcher, Pool } from 'undici';
// The same list floodgate drops, so the floor does the same header work and nothing more.
import { HOP_BY_HOP } from '../../proxy/http/request-headers.js';
import { serveAsChild } from '../lib/child-server.js';

const upstream = process.argv[2];
if (!upstream) {
  process.stderr.write('usage: bare-forwarder.ts UPSTREAM_URL\n');
  process.exit(2);
}

// The pool floodgate builds for an upstream, so the two differ only in the work done per request.
const pool = new Pool(upstream, { connections: 256, keepAliveTimeout: 30_000 });

function responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) if (!HOP_BY_HOP.has(name)) out[name] = headers[name];
  return out;
}

const server = createServer((req, res) => {
  const raw = req.rawHeaders;
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!);
  }
  const method = req.method ?? 'GET';
  const handler: Dispatcher.DispatchHandler = {
    // Its presence tells undici this handler speaks the controller API (the callbacks below).
    onRequestStart() {},
    onResponseStart(_controller, statusCode, upstreamHeaders, statusMessage) {
      if (statusCode >= 200) res.writeHead(statusCode, statusMessage, responseHeaders(upstreamHeaders));
    },
    onResponseData(controller, chunk) {
      // Backpressure, as any forwarder needs: stop reading the upstream while the client is behind.
      if (res.write(chunk)) return;
      controller.pause();
      res.once('drain', () => controller.resume());
    },
    onResponseEnd() {
      res.end();
    },
    onResponseError(_controller, _err) {
      if (res.headersSent) res.destroy();
      else res.writeHead(502, { 'content-length': '0' }).end();
    },
  };
  pool.dispatch(
    {
      path: req.url ?? '/',
      method,
      headers,
      body: method === 'GET' || method === 'HEAD' ? null : req,
    },
    handler,
  );
});
serveAsChild(server, () => void pool.close());
