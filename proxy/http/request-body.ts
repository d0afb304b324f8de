// Reads a request body completely before the upstream is contacted, as nginx does by default
// (proxy_request_buffering). A client that trickles its body then holds only its own socket and a
// little memory or disk, never one of the upstream's pooled connections, and a body that stops
// arriving for `idleTimeoutMs` is answered 408 (nginx's client_body_timeout).
//
// The first `memoryBytes` stay in memory; a larger body goes to a temporary file that is unlinked as
// soon as it is created, so it is never held in memory whole and leaves nothing behind, even after
// a crash. `maxBody` is enforced as the bytes arrive, for declared and chunked bodies alike.
import { createReadStream, createWriteStream, openSync, unlinkSync, type WriteStream } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

export interface BodyLimits {
  readonly maxBody: number;
  readonly idleTimeoutMs: number;
  readonly memoryBytes: number;
  readonly tempDir: string;
}

export type BodyResult =
  | { readonly ok: true; readonly body: Buffer | Readable; readonly length: number }
  | { readonly ok: false; readonly reason: 'too-large' | 'timeout' | 'aborted' };

let spills = 0;

/** An unlinked temporary file: written once, then read back once from the start. */
class Spill {
  private readonly fd: number;
  private readonly out: WriteStream;

  constructor(dir: string) {
    const path = join(dir, `floodgate-body-${process.pid}-${++spills}`);
    this.fd = openSync(path, 'wx+', 0o600);
    unlinkSync(path);
    this.out = createWriteStream('', { fd: this.fd, autoClose: false });
  }

  /** False when the disk is behind: pause the source until `drain`. */
  write(chunk: Buffer): boolean {
    return this.out.write(chunk);
  }

  onDrain(fn: () => void): void {
    this.out.once('drain', fn);
  }

  finish(cb: (body: Readable | null) => void): void {
    this.out.end(() => cb(createReadStream('', { fd: this.fd, start: 0, autoClose: true })));
    this.out.once('error', () => {
      this.discard();
      cb(null);
    });
  }

  discard(): void {
    // destroy() closes the descriptor, after any write already under way.
    this.out.on('error', () => undefined);
    this.out.destroy();
  }
}

export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let spill: Spill | null = null;
    let settled = false;
    const settle = (result: BodyResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(idle);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      if (!result.ok) {
        // Read no more: the caller answers (413, 408) and closes the connection.
        req.pause();
        spill?.discard();
      }
      resolve(result);
    };
    const idle = setTimeout(() => settle({ ok: false, reason: 'timeout' }), limits.idleTimeoutMs);
    const onData = (chunk: Buffer): void => {
      idle.refresh();
      size += chunk.length;
      if (size > limits.maxBody) {
        settle({ ok: false, reason: 'too-large' });
        return;
      }
      if (spill === null) {
        chunks.push(chunk);
        if (size <= limits.memoryBytes) return;
        spill = new Spill(limits.tempDir);
        for (const c of chunks.splice(0)) spill.write(c);
        return;
      }
      if (!spill.write(chunk)) {
        req.pause();
        spill.onDrain(() => req.resume());
      }
    };
    const onEnd = (): void => {
      if (spill === null) settle({ ok: true, body: Buffer.concat(chunks, size), length: size });
      else
        spill.finish((body) =>
          settle(body ? { ok: true, body, length: size } : { ok: false, reason: 'aborted' }),
        );
    };
    const onClose = (): void => {
      if (!req.complete) settle({ ok: false, reason: 'aborted' });
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
  });
}
