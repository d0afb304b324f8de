// The client's headers as the upstream will receive them: ambiguous requests refused, hop-by-hop and
// proxy-owned headers dropped, the admin cookie stripped.
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  BASE_SINGLETONS,
  checkRequestHeaders,
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

function forwarded(r: IncomingMessage, singletons = BASE_SINGLETONS, skipHost = false, rules = RULES) {
  const out = checkRequestHeaders(r, singletons, skipHost, rules);
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
      BASE_SINGLETONS,
      false,
      RULES,
    );
    expect(out).toMatchObject({ ok: false, code: 'bad_request' });
  });

  it("refuses a second copy of a header the route's limits read, but forwards both copies of another", () => {
    const route = singletonHeaders(['x-api-key', 'x-request-cost']);
    const twoKeys = req('X-Api-Key', 'a', 'x-api-key', 'b');
    expect(checkRequestHeaders(twoKeys, route, false, RULES)).toEqual({
      ok: false,
      code: 'bad_request',
      detail: 'more than one x-api-key header',
    });
    const twoCosts = req('X-Request-Cost', '1', 'X-Api-Key', 'k', 'X-REQUEST-COST', '1');
    expect(checkRequestHeaders(twoCosts, route, false, RULES)).toEqual({
      ok: false,
      code: 'bad_request',
      detail: 'more than one X-REQUEST-COST header',
    });
    expect(forwarded(twoKeys)).toEqual(['X-Api-Key', 'a', 'x-api-key', 'b']);
    expect(forwarded(req('Accept', 'a', 'Accept', 'b', 'X-Api-Key', 'k'), route)).toEqual([
      'Accept',
      'a',
      'Accept',
      'b',
      'X-Api-Key',
      'k',
    ]);
  });

  it('singletonHeaders: the base four plus the extras, once each', () => {
    expect([...BASE_SINGLETONS.keys()]).toEqual(['host', 'content-length', 'content-type', 'authorization']);
    const route = singletonHeaders(['authorization', 'x-cost', 'x-cost']);
    expect([...route.keys()]).toEqual(['host', 'content-length', 'content-type', 'authorization', 'x-cost']);
    expect(new Set(route.values()).size).toBe(5);
    expect(() => singletonHeaders(Array.from({ length: 28 }, (_, i) => `x-${i}`))).toThrow(RangeError);
  });

  it('refuses more than maxHeaders lines', () => {
    const rules = { maxHeaders: 2, underscores: false };
    expect(forwarded(req('A', '1', 'B', '2'), BASE_SINGLETONS, false, rules)).toHaveLength(4);
    expect(
      checkRequestHeaders(req('A', '1', 'B', '2', 'C', '3'), BASE_SINGLETONS, false, rules),
    ).toMatchObject({
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
    expect(forwarded(r, BASE_SINGLETONS, false, { maxHeaders: 100, underscores: true })).toEqual([
      'X_API_KEY',
      'k',
      'X-Kept',
      '1',
    ]);
  });

  it('drops Host when skipHost is set', () => {
    expect(forwarded(req('Host', 'a', 'X-Kept', '1'), BASE_SINGLETONS, true)).toEqual(['X-Kept', '1']);
  });

  it('strips the admin session cookie and keeps the others', () => {
    expect(forwarded(req('Cookie', 'a=1; floodgate_admin=v2.1.x; b=2'))).toEqual(['Cookie', 'a=1; b=2']);
    expect(forwarded(req('Cookie', 'floodgate_admin=v2.1.x', 'X-Kept', '1'))).toEqual(['X-Kept', '1']);
  });
});
