// Every error the proxy answers with, in one registry: a stable code, its HTTP status and its
// JSON body (the README's "What each failure does" shows them). Callers match on `code`, never on a message.
// Codes are lower_snake like every Floodgate error code; they stay internal (bodies carry messages).

export type ProxyErrorCode =
  | 'no_route'
  | 'rate_limited'
  | 'circuit_open'
  | 'store_unavailable'
  | 'payload_too_large'
  | 'bad_gateway'
  | 'gateway_timeout'
  | 'bad_request'
  | 'request_timeout'
  | 'headers_too_large';

// rate_limited's 429 is the default: a route's limits may answer with a status and body of their own
// (limits.rejection, ratelimit/rejection-template.ts).
const STATUS: Record<ProxyErrorCode, number> = {
  no_route: 404,
  rate_limited: 429,
  circuit_open: 503,
  store_unavailable: 503,
  payload_too_large: 413,
  bad_gateway: 502,
  gateway_timeout: 504,
  bad_request: 400,
  request_timeout: 408,
  headers_too_large: 431,
};

const MESSAGE: Record<ProxyErrorCode, string> = {
  no_route: 'No route',
  rate_limited: 'Rate limit exceeded',
  circuit_open: 'Service temporarily unavailable',
  store_unavailable: 'Rate limit store unavailable',
  payload_too_large: 'Payload too large',
  bad_gateway: 'Bad gateway',
  gateway_timeout: 'Gateway timeout',
  bad_request: 'Bad request',
  request_timeout: 'Request timeout',
  headers_too_large: 'Request header fields too large',
};

export function statusOf(code: ProxyErrorCode): number {
  return STATUS[code];
}

/** The JSON body for `code`, with the extra fields that answer carries. */
export function errorBody(code: ProxyErrorCode, extra?: Record<string, unknown>): string {
  return JSON.stringify(extra ? { error: MESSAGE[code], ...extra } : { error: MESSAGE[code] });
}

const TIMEOUT_CODES = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'ETIMEDOUT',
]);

/** Maps an undici or socket error to the gateway answer it deserves. */
export function classifyUpstreamError(err: unknown): 'bad_gateway' | 'gateway_timeout' {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TIMEOUT_CODES.has(code) ? 'gateway_timeout' : 'bad_gateway';
}
