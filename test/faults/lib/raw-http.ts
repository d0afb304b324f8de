// Raw TCP to an HTTP server, for requests no HTTP client would send: malformed request lines,
// oversized or invalid headers, headers trickled byte by byte.
import { Socket } from 'node:net';

export interface RawResult {
  /** Everything the server sent. */
  readonly response: string;
  /** The status of the first response, or 0 when none came. */
  readonly status: number;
  /** Whether the server closed (or reset) the connection before our bound. */
  readonly closed: boolean;
  readonly ms: number;
}

/** Sends `data` on a fresh connection and collects the answer until the server closes or `timeoutMs`. */
export function rawRequest(port: number, data: string | Buffer, timeoutMs = 5_000): Promise<RawResult> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const started = performance.now();
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const response = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(response);
      resolve({ response, status: m ? Number(m[1]) : 0, closed, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.connect(port, '127.0.0.1', () => socket.write(data));
  });
}

export interface SlowlorisResult {
  /** ms from connect until the server closed the connection; null if it never did within the bound. */
  readonly closedAfterMs: number | null;
  /** Header lines we managed to send. */
  readonly linesSent: number;
  readonly response: string;
}

/**
 * A slowloris client: a request line, then one header line every `intervalMs`, never the blank line
 * that ends the headers. Stops at `boundMs` (or `maxLines`) if the server has not closed by then.
 */
export function slowloris(
  port: number,
  { intervalMs, boundMs, maxLines }: { intervalMs: number; boundMs: number; maxLines: number },
): Promise<SlowlorisResult> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const chunks: Buffer[] = [];
    let started = 0;
    let linesSent = 0;
    let settled = false;
    let ticker: NodeJS.Timeout | undefined;
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearInterval(ticker);
      clearTimeout(bound);
      socket.destroy();
      resolve({
        closedAfterMs: closed ? performance.now() - started : null,
        linesSent,
        response: Buffer.concat(chunks).toString('latin1'),
      });
    };
    const bound = setTimeout(() => finish(false), boundMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.connect(port, '127.0.0.1', () => {
      started = performance.now();
      socket.write('GET /open/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      ticker = setInterval(() => {
        if (settled || socket.destroyed) return;
        if (linesSent >= maxLines) return finish(false);
        linesSent++;
        socket.write(`X-Slow-${linesSent}: ${'a'.repeat(8)}\r\n`);
      }, intervalMs);
    });
  });
}

/** The body of a raw HTTP/1.1 response, de-chunked when it came chunked. */
export function responseBody(response: string): string {
  const split = response.indexOf('\r\n\r\n');
  if (split === -1) return '';
  const head = response.slice(0, split);
  let rest = response.slice(split + 4);
  if (!/^transfer-encoding:\s*chunked/im.test(head)) return rest;
  let body = '';
  for (let guard = 0; guard < 10_000; guard++) {
    const eol = rest.indexOf('\r\n');
    if (eol === -1) break;
    const size = Number.parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) break;
    body += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
  return body;
}
