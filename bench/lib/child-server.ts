// The life of a server the macro benchmark runs as a child process: listen on a free loopback port,
// print {"port":N} as one line for the parent, and exit when stdin closes (the parent has gone), on
// SIGTERM or on SIGINT. Keep-alive outlasts any run, so pooled connections live for the whole benchmark.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export function serveAsChild(server: Server, onStop: () => void = () => undefined): void {
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + '\n');
  });
  const stop = (): void => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    onStop();
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
