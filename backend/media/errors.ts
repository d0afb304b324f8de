// The one error type of the media layer (ffmpeg, whisper.cpp, child processes). Callers branch on
// `code`, never on the message: invalid_audio fails a job for good, aborted is a cancellation,
// and the rest are engine faults that a circuit breaker may count and a retry may cure.

export type MediaErrorCode =
  /**
   * The input is empty, undecodable, has no audio, or a duration of zero (or over the limit). Its
   * message is shown to the client, so it never holds a path or a tool's output (see stderrTail).
   */
  | 'invalid_audio'
  /** A caller's argument is unusable (e.g. an unknown language); not the engine's fault. */
  | 'invalid_argument'
  /** The binary (ffmpeg, whisper.cpp) is missing or cannot be started. */
  | 'engine_unavailable'
  /** The process exited non-zero or was killed by someone else. */
  | 'process_failed'
  /** The process exceeded its time budget and was killed. */
  | 'timeout'
  /** The caller's AbortSignal fired; the process was killed. */
  | 'aborted'
  /** The process claimed success but its output is missing or unreadable. */
  | 'bad_output';

const BRAND = Symbol.for('floodgate.MediaError');

export interface MediaErrorDetails {
  /** The last few KB of the process's stderr, for logs and job errors. */
  stderrTail?: string;
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
  command?: string;
  cause?: unknown;
}

export class MediaError extends Error {
  readonly [BRAND] = true;
  override readonly name = 'MediaError';
  readonly stderrTail: string | undefined;
  readonly exitCode: number | null | undefined;
  readonly signal: NodeJS.Signals | null | undefined;
  readonly command: string | undefined;

  constructor(
    readonly code: MediaErrorCode,
    message: string,
    details: MediaErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.stderrTail = details.stderrTail;
    this.exitCode = details.exitCode;
    this.signal = details.signal;
    this.command = details.command;
  }
}

/** True for a MediaError from any copy of this module (the brand survives duplicate loading). */
export function isMediaError(err: unknown, code?: MediaErrorCode): err is MediaError {
  return (
    typeof err === 'object' &&
    err !== null &&
    (err as Record<symbol, unknown>)[BRAND] === true &&
    (code === undefined || (err as MediaError).code === code)
  );
}
