// Every error the backend answers with or records on a job, in one registry: a stable code, its
// HTTP status and its public message. Callers match on `code`, never on a message.
import { FloodgateError, hasBrand } from '../core/errors.js';

export type ApiErrorCode =
  | 'no_file'
  | 'empty_file'
  | 'unexpected_field'
  | 'bad_request'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'not_found'
  | 'method_not_allowed'
  | 'not_ready'
  | 'job_failed'
  | 'idempotency_mismatch'
  | 'model_not_found'
  | 'wait_timeout'
  | 'job_cancelled'
  | 'engine_failed'
  | 'unavailable'
  | 'internal';

const STATUS: Record<ApiErrorCode, number> = {
  no_file: 400,
  empty_file: 400,
  unexpected_field: 400,
  bad_request: 400,
  payload_too_large: 413,
  unsupported_media_type: 415,
  not_found: 404,
  method_not_allowed: 405,
  not_ready: 409,
  job_failed: 422,
  idempotency_mismatch: 422,
  model_not_found: 400,
  // Not a 5xx: a long job is not a failing backend, and a proxy's breaker must not count it.
  wait_timeout: 408,
  job_cancelled: 409,
  engine_failed: 500,
  unavailable: 503,
  internal: 500,
};

/** An error the API turns into `{"error": message, ...extra}` with the code's status. */
export class ApiError extends FloodgateError<ApiErrorCode> {
  constructor(
    code: ApiErrorCode,
    message: string,
    readonly extra?: Record<string, unknown>,
  ) {
    super('ApiError', code, message);
  }
}

export function isApiError(error: unknown): error is ApiError {
  return hasBrand(error, 'ApiError');
}

export function statusOf(code: ApiErrorCode): number {
  return STATUS[code];
}

/** Codes a job can fail (or stop) with; stored in its status as error.code. */
export type JobErrorCode = 'invalid_audio' | 'invalid_argument' | 'engine_failed' | 'cancelled' | 'internal';

/** A job-level failure. invalid_audio is permanent: the queue does not retry it. */
export class JobError extends FloodgateError<JobErrorCode> {
  constructor(code: JobErrorCode, message: string, options?: { cause?: unknown }) {
    super('JobError', code, message, options);
  }
}

export function isJobError(error: unknown, code?: JobErrorCode): error is JobError {
  return hasBrand(error, 'JobError') && (code === undefined || (error as JobError).code === code);
}

/** The `code` property of any error (Node's, the media layer's, ours), or undefined. */
export function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
