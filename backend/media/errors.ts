// The one error type of the media layer (ffmpeg, whisper.cpp, child processes). Callers branch on
// `code`, never on the message: invalid_audio fails a job for good, aborted is a cancellation,
// and the rest are engine faults that a circuit breaker may count and a retry may cure.
import { hasBrand } from '../../core/errors.js';
import { ProcessError, type ProcessErrorCode, type ProcessErrorDetails } from '../../core/process.js';

export type MediaErrorCode =
  /** engine_unavailable, process_failed, timeout, aborted: as core/process.ts reports them. */
  | ProcessErrorCode
  /**
   * The input is empty, undecodable, has no audio, or a duration of zero (or over the limit). Its
   * message is shown to the client, so it never holds a path or a tool's output (see stderrTail).
   */
  | 'invalid_audio'
  /** A caller's argument is unusable (e.g. an unknown language); not the engine's fault. */
  | 'invalid_argument'
  /** The process claimed success but its output is missing or unreadable. */
  | 'bad_output';

export type MediaErrorDetails = ProcessErrorDetails;

export class MediaError extends ProcessError<MediaErrorCode> {
  constructor(code: MediaErrorCode, message: string, details: MediaErrorDetails = {}) {
    super(code, message, details, 'MediaError');
  }
}

/** True for a MediaError from any copy of this module (the brand survives duplicate loading). */
export function isMediaError(err: unknown, code?: MediaErrorCode): err is MediaError {
  return hasBrand(err, 'MediaError') && (code === undefined || (err as MediaError).code === code);
}

/** The media layer's form of a ProcessError from core/process.ts: same code, message and details. */
export function mediaErrorFrom(err: ProcessError): MediaError {
  const { code, message, stderrTail, exitCode, signal, command, cause } = err;
  return new MediaError(code, message, { stderrTail, exitCode, signal, command, cause });
}
