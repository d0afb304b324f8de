// Errors in the shape OpenAI's API (and so its SDKs) use: `{"error": {"message", "type", "param",
// "code"}}`, with the status of the one registry. Everything under /v1/ answers errors this way.
import type { ServerResponse } from 'node:http';
import { type ApiError, statusOf } from '../errors.js';
import { sendJson } from './respond.js';

export interface OpenAIErrorBody {
  error: {
    message: string;
    type: 'invalid_request_error' | 'server_error';
    param: string | null;
    code: string;
    [extra: string]: unknown;
  };
}

/** The field an upload error is about, where the error does not say. */
const PARAM_OF: Partial<Record<ApiError['code'], string>> = {
  no_file: 'file',
  empty_file: 'file',
  unexpected_field: 'file',
  payload_too_large: 'file',
  unsupported_media_type: 'file',
  model_not_found: 'model',
};

export function openAIErrorBody(error: ApiError): OpenAIErrorBody {
  const { param, ...extra } = error.extra ?? {};
  return {
    error: {
      // First, so no extra can stand in for one of OpenAI's four fields.
      ...extra,
      message: error.message,
      type: statusOf(error.code) >= 500 ? 'server_error' : 'invalid_request_error',
      param: typeof param === 'string' ? param : (PARAM_OF[error.code] ?? null),
      code: error.code,
    },
  };
}

export function sendOpenAIError(
  res: ServerResponse,
  error: ApiError,
  headers?: Record<string, string>,
): void {
  sendJson(res, statusOf(error.code), openAIErrorBody(error), headers);
}
