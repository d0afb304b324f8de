// The macro benchmark's upstream: a minimal keep-alive HTTP server that answers every request at once
// with a small fixed JSON body, so what is measured is whatever sits in front of it. Paths under /fail
// answer 503, which the breaker counts as failures (the open-breaker scenario trips itself that way).
//
// Run by bench/macro/macro.ts as a child: it listens on a free loopback port, prints {"port":N} as one
// line, and exits when its stdin closes (the parent has gone), on SIGTERM, or on SIGINT.
import { createServer } from 'node:http';
import { serveAsChild } from '../lib/child-server.js';

const BODY = Buffer.from('{"ok":true,"from":"upstream"}');
const OK_HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) };

const server = createServer((req, res) => {
  res.writeHead(req.url?.startsWith('/fail') ? 503 : 200, OK_HEADERS);
  res.end(BODY);
});
serveAsChild(server);
