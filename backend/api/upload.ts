// Streams an upload to disk, never holding the file in memory: a multipart form (busboy, field
// `file`) or a raw audio body. The size limit is enforced while bytes arrive, and the content type
// before any are written; the SHA-256 of the stored bytes is taken as they are written. On any failure the partial file is removed and an ApiError says why;
// the request is left readable so the caller can answer first and then discard the rest.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import { FloodgateError, hasBrand } from '../../core/errors.js';
import { ApiError } from '../errors.js';

export interface UploadResult {
  bytes: number;
  /** SHA-256 of the stored file, hex. */
  sha256: string;
  /** Non-file form fields (multipart only). */
  fields: Record<string, string>;
}

/** Types we hand to ffmpeg. Anything else is refused with 415 before a byte is stored. */
export function isAudioType(mime: string): boolean {
  const type = mime.split(';')[0]!.trim().toLowerCase();
  return (
    type.startsWith('audio/') ||
    type.startsWith('video/') ||
    type === 'application/octet-stream' ||
    type === 'application/ogg'
  );
}

export function tooLarge(maxBytes: number): ApiError {
  return new ApiError('payload_too_large', 'Payload too large', { max_upload: maxBytes });
}

/** Writes the request's audio to `dest`; throws ApiError (400, 413, 415) after removing `dest`. */
export async function receiveUpload(
  req: IncomingMessage,
  dest: string,
  maxBytes: number,
): Promise<UploadResult> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (type === '' && (declared === 0 || req.headers['content-length'] === undefined)) {
    throw new ApiError('no_file', 'No file: send a multipart form with the field "file", or an audio body');
  }
  // A declared length over the limit is refused before reading (a multipart envelope adds a few
  // hundred bytes, so a form is judged by what arrives instead).
  if (type !== 'multipart/form-data' && declared > maxBytes) throw tooLarge(maxBytes);
  let result: UploadResult;
  try {
    if (type === 'multipart/form-data') result = await receiveMultipart(req, dest, maxBytes);
    else if (isAudioType(type)) result = { ...(await receiveRaw(req, dest, maxBytes)), fields: {} };
    else {
      throw new ApiError(
        'unsupported_media_type',
        `Unsupported media type ${JSON.stringify(type || '(none)')}: send audio/*, application/octet-stream or multipart/form-data`,
      );
    }
  } catch (error) {
    await rm(dest, { force: true });
    throw error;
  }
  if (result.bytes === 0) {
    await rm(dest, { force: true });
    throw new ApiError('empty_file', 'Empty file');
  }
  return result;
}

type Stored = Pick<UploadResult, 'bytes' | 'sha256'>;

function receiveRaw(req: IncomingMessage, dest: string, maxBytes: number): Promise<Stored> {
  return new Promise((resolve, reject) => {
    const sink = new FileSink(dest, maxBytes, reject);
    sink.consume(req, resolve);
    onClientGone(req, () => sink.fail(clientAborted()));
  });
}

function receiveMultipart(req: IncomingMessage, dest: string, maxBytes: number): Promise<UploadResult> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fields: Record<string, string> = {};
    let sink: FileSink | null = null;
    let fileWritten: Promise<Stored> | null = null;
    let parser: busboy.Busboy;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      req.unpipe(parser);
      sink?.fail(error);
      reject(error);
    };
    try {
      parser = busboy({
        headers: req.headers,
        limits: { files: 1, fileSize: maxBytes, fields: 16, fieldSize: 1024, parts: 24 },
      });
    } catch (error) {
      reject(new ApiError('bad_request', `Malformed multipart request: ${(error as Error).message}`));
      return;
    }
    parser.on('file', (name, stream, info) => {
      if (settled) return void stream.resume();
      if (name !== 'file') {
        stream.resume();
        return fail(
          new ApiError(
            'unexpected_field',
            `Unexpected file field ${JSON.stringify(name)}: send the audio as "file"`,
          ),
        );
      }
      if (!isAudioType(info.mimeType)) {
        stream.resume();
        return fail(
          new ApiError(
            'unsupported_media_type',
            `Unsupported media type ${JSON.stringify(info.mimeType)} for "file"`,
          ),
        );
      }
      stream.on('limit', () => fail(tooLarge(maxBytes)));
      sink = new FileSink(dest, Number.POSITIVE_INFINITY, fail);
      const current = sink;
      fileWritten = new Promise((done) => current.consume(stream, done));
    });
    parser.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(new ApiError('bad_request', `Field ${JSON.stringify(name)} is too long`));
      else fields[name] = value;
    });
    parser.on('filesLimit', () => fail(new ApiError('bad_request', 'Send one file per request')));
    parser.on('fieldsLimit', () => fail(new ApiError('bad_request', 'Too many form fields')));
    parser.on('partsLimit', () => fail(new ApiError('bad_request', 'Too many form parts')));
    parser.on('error', (error) =>
      fail(new ApiError('bad_request', `Malformed multipart request: ${errorText(error)}`)),
    );
    parser.on('close', () => {
      if (settled) return;
      if (!fileWritten) {
        const hint = 'file' in fields ? ' ("file" arrived as a text field; send it as a file part)' : '';
        return fail(new ApiError('no_file', `No file: the form has no "file" field${hint}`));
      }
      fileWritten.then((stored) => {
        if (settled) return;
        settled = true;
        resolve({ ...stored, fields });
      }, fail);
    });
    onClientGone(req, () => fail(clientAborted()));
    req.pipe(parser);
  });
}

/** Copies a stream to a new file with backpressure, counting bytes against a limit and hashing them. */
class FileSink {
  private bytes = 0;
  private failed = false;
  private readonly out;
  private readonly hash = createHash('sha256');

  constructor(
    private readonly dest: string,
    private readonly maxBytes: number,
    private readonly onError: (error: unknown) => void,
  ) {
    // 'wx': an id is used once, so an existing file means something is wrong; never overwrite it.
    this.out = createWriteStream(dest, { flags: 'wx' });
    this.out.on('error', (error) => this.fail(error));
  }

  consume(source: Readable, onDone: (stored: Stored) => void): void {
    source.on('data', (chunk: Buffer) => {
      if (this.failed) return;
      this.bytes += chunk.length;
      if (this.bytes > this.maxBytes) return this.fail(tooLarge(this.maxBytes));
      this.hash.update(chunk);
      if (!this.out.write(chunk)) {
        source.pause();
        this.out.once('drain', () => source.resume());
      }
    });
    source.on('end', () => {
      if (this.failed) return;
      this.out.end();
      this.out.once('close', () => {
        if (!this.failed) onDone({ bytes: this.bytes, sha256: this.hash.digest('hex') });
      });
    });
    source.on('error', (error) => this.fail(error));
  }

  fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    // Removed only once closed: a stream destroyed while still opening creates its file after.
    this.out.once('close', () => void rm(this.dest, { force: true }).catch(() => {}));
    this.out.destroy();
    this.onError(error);
  }
}

/** The client went away before the body ended (a truncated upload). */
export class ClientAbortedError extends FloodgateError<'client_aborted'> {
  constructor(message: string) {
    super('ClientAbortedError', 'client_aborted', message);
  }
}

export function isClientAborted(error: unknown): error is ClientAbortedError {
  return hasBrand(error, 'ClientAbortedError');
}

function clientAborted(): ClientAbortedError {
  return new ClientAbortedError('the client closed the connection before the upload ended');
}

function onClientGone(req: IncomingMessage, fn: () => void): void {
  req.on('close', () => {
    if (!req.complete) fn();
  });
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
