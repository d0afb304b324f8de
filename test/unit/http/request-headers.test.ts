// The client's headers as the upstream will receive them: ambiguous requests refused, hop-by-hop and
// proxy-owned headers dropped, the admin cookie stripped.
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  checkRequestHeaders,
  DEFAULT_SINGLETONS,
  type HeaderRules,
  singletonHeaders,
} from '../../../proxy/http/request-headers.js';

const RULES: HeaderRules = { maxHeaders: 100, underscores: false };

/** A request carrying `raw` as [name, value, …]; `headers.connection` mirrors a Connection line. */
function req(...raw: string[]): IncomingMessage {
  const connection: string[] = [];
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]!.toLowerCase() === 'connection') connection.push(raw[i + 1]!);
  const headers = connection.length > 0 ? { connection: connection.join(', ') } : {};
  return { rawHeaders: raw, headers } as unknown as IncomingMessage;
}

/** The singletons of a route whose limits read `headers` (none: DEFAULT_SINGLETONS). */
const only = (...headers: string[]) =>
  headers.length === 0 ? DEFAULT_SINGLETONS : singletonHeaders(headers);

function forwarded(r: IncomingMessage, keyHeader: string | null = null, skipHost = false, rules = RULES) {
  const out = checkRequestHeaders(r, keyHeader === null ? only() : only(keyHeader), skipHost, rules);
  if (!out.ok) throw new Error(`refused: ${out.detail}`);
  return out.headers;
}

describe('checkRequestHeaders', () => {
  it('forwards ordinary headers in order, with their original name case', () => {
    expect(forwarded(req('Host', 'a', 'X-Custom', 'v', 'accept', '*/*'))).toEqual([
      'Host',
      'a',
      'X-Custom',
      'v',
      'accept',
      '*/*',
    ]);
  });

  it.each(['Host', 'Content-Length', 'Content-Type', 'Authorization'])('refuses a second %s', (name) => {
    const out = checkRequestHeaders(
      req(name, '1', 'X-Other', 'x', name.toLowerCase(), '2'),
      only(),
      false,
      RULES,
    );
    expect(out).toMatchObject({ ok: false, code: 'bad_request' });
  });

  it('refuses a second copy of the key header but forwards both copies of another', () => {
    const twoKeys = req('X-Api-Key', 'a', 'x-api-key', 'b');
    expect(checkRequestHeaders(twoKeys, only('x-api-key'), false, RULES)).toMatchObject({
      ok: false,
      code: 'bad_request',
    });
    expect(forwarded(twoKeys, null)).toEqual(['X-Api-Key', 'a', 'x-api-key', 'b']);
    expect(forwarded(req('Accept', 'a', 'Accept', 'b', 'X-Api-Key', 'k'), 'x-api-key')).toEqual([
      'Accept',
      'a',
      'Accept',
      'b',
      'X-Api-Key',
      'k',
    ]);
  });

  it("refuses a second copy of any header in a route's list (key parts, plan header), and only those", () => {
    const route = only('x-api-key', 'x-plan');
    for (const raw of [
      ['X-Plan', 'pro', 'x-plan', 'free'],
      ['X-Api-Key', 'a', 'X-Plan', 'pro', 'X-API-KEY', 'b'],
    ]) {
      expect(checkRequestHeaders(req(...raw), route, false, RULES)).toMatchObject({
        ok: false,
        code: 'bad_request',
        detail: `more than one ${raw.at(-2)} header`,
      });
    }
    expect(
      checkRequestHeaders(
        req('X-Plan', 'pro', 'X-Api-Key', 'a', 'X-Tier', '1', 'x-tier', '2'),
        route,
        false,
        RULES,
      ),
    ).toMatchObject({ ok: true });
    // The fixed singletons stay singletons whatever a route adds, and a name listed twice is one.
    const twice = only('x-plan', 'x-plan', 'host');
    expect(checkRequestHeaders(req('Host', 'a', 'Host', 'b'), twice, false, RULES)).toMatchObject({
      ok: false,
    });
    expect(checkRequestHeaders(req('X-Plan', 'a', 'X-Plan', 'b'), twice, false, RULES)).toMatchObject({
      ok: false,
    });
  });

  it('refuses more than maxHeaders lines', () => {
    const rules = { maxHeaders: 2, underscores: false };
    expect(forwarded(req('A', '1', 'B', '2'), null, false, rules)).toHaveLength(4);
    expect(checkRequestHeaders(req('A', '1', 'B', '2', 'C', '3'), only(), false, rules)).toMatchObject({
      ok: false,
      code: 'headers_too_large',
    });
  });

  it('drops hop-by-hop headers', () => {
    const hop = [
      'Connection',
      'keep-alive',
      'Keep-Alive',
      'timeout=5',
      'TE',
      'trailers',
      'Trailer',
      'X-T',
      'Transfer-Encoding',
      'chunked',
      'Upgrade',
      'websocket',
      'Proxy-Authorization',
      'Basic eA==',
      'Proxy-Connection',
      'keep-alive',
      'Expect',
      '100-continue',
    ];
    expect(forwarded(req('Host', 'a', ...hop, 'X-Kept', '1'))).toEqual(['Host', 'a', 'X-Kept', '1']);
  });

  it('drops the headers Connection names, but never Host or Content-Length', () => {
    expect(forwarded(req('Connection', 'X-Secret, close', 'X-Secret', 's', 'X-Kept', '1'))).toEqual([
      'X-Kept',
      '1',
    ]);
    expect(forwarded(req('Connection', 'Host, Content-Length', 'Host', 'a', 'Content-Length', '0'))).toEqual([
      'Host',
      'a',
      'Content-Length',
      '0',
    ]);
  });

  it('drops the headers the proxy sets itself', () => {
    const own = [
      'X-Forwarded-For',
      'X-Forwarded-Proto',
      'X-Forwarded-Host',
      'X-Real-IP',
      'Forwarded',
      'X-Request-Id',
    ];
    const raw = own.flatMap((name) => [name, 'spoofed']);
    expect(forwarded(req(...raw, 'X-Kept', '1'))).toEqual(['X-Kept', '1']);
  });

  it('drops names with an underscore unless underscores are allowed', () => {
    const r = req('X_API_KEY', 'k', 'X-Kept', '1');
    expect(forwarded(r)).toEqual(['X-Kept', '1']);
    expect(forwarded(r, null, false, { maxHeaders: 100, underscores: true })).toEqual([
      'X_API_KEY',
      'k',
      'X-Kept',
      '1',
    ]);
  });

  it('drops Host when skipHost is set', () => {
    expect(forwarded(req('Host', 'a', 'X-Kept', '1'), null, true)).toEqual(['X-Kept', '1']);
  });

  it('strips the admin session cookie and keeps the others', () => {
    expect(forwarded(req('Cookie', 'a=1; floodgate_admin=v2.1.x; b=2'))).toEqual(['Cookie', 'a=1; b=2']);
    expect(forwarded(req('Cookie', 'floodgate_admin=v2.1.x', 'X-Kept', '1'))).toEqual(['X-Kept', '1']);
  });
});
