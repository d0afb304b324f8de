// Every error the proxy answers with, in one registry: a stable code, its HTTP status and its
// JSON body (the README's "Proxy responses" lists them). Callers match on `code`, never on a message.

export type ProxyErrorCode =
  | 'NO_ROUTE'
  | 'RATE_LIMITED'
  | 'CIRCUIT_OPEN'
  | 'STORE_UNAVAILABLE'
  | 'PAYLOAD_TOO_LARGE'
  | 'BAD_GATEWAY'
  | 'GATEWAY_TIMEOUT'
  | 'BAD_REQUEST'
  | 'REQUEST_TIMEOUT'
  | 'HEADERS_TOO_LARGE';

const STATUS: Record<ProxyErrorCode, number> = {
  NO_ROUTE: 404,
  RATE_LIMITED: 429,
  CIRCUIT_OPEN: 503,
  STORE_UNAVAILABLE: 503,
  PAYLOAD_TOO_LARGE: 413,
  BAD_GATEWAY: 502,
  GATEWAY_TIMEOUT: 504,
  BAD_REQUEST: 400,
  REQUEST_TIMEOUT: 408,
  HEADERS_TOO_LARGE: 431,
};

const MESSAGE: Record<ProxyErrorCode, string> = {
  NO_ROUTE: 'No route',
  RATE_LIMITED: 'Rate limit exceeded',
  CIRCUIT_OPEN: 'Service temporarily unavailable',
  STORE_UNAVAILABLE: 'Rate limit store unavailable',
  PAYLOAD_TOO_LARGE: 'Payload too large',
  BAD_GATEWAY: 'Bad gateway',
  GATEWAY_TIMEOUT: 'Gateway timeout',
  BAD_REQUEST: 'Bad request',
  REQUEST_TIMEOUT: 'Request timeout',
  HEADERS_TOO_LARGE: 'Request header fields too large',
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
export function classifyUpstreamError(err: unknown): 'BAD_GATEWAY' | 'GATEWAY_TIMEOUT' {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TIMEOUT_CODES.has(code) ? 'GATEWAY_TIMEOUT' : 'BAD_GATEWAY';
}
