// A route's rejection, compiled once and rendered per refusal: exact bytes for the default body and
// for templates, placeholders typed as their values, and the template checks the schema relies on.
import { describe, expect, it } from 'vitest';
import type { Rejection } from '../../../proxy/ratelimit/headers.js';
import {
  compileRejection,
  DEFAULT_REJECTION,
  splitPlaceholders,
} from '../../../proxy/ratelimit/rejection-template.js';

const R: Rejection = { index: 0, limit: 100, window: 'hourly', retryAfter: 123 };

describe('compileRejection', () => {
  it('the default is byte for byte the documented 429', () => {
    const answer = compileRejection(DEFAULT_REJECTION, 'api');
    expect(answer.status).toBe(429);
    expect(answer.body(R)).toBe(
      '{"error":"Rate limit exceeded","limit":100,"window":"hourly","retry_after":123}',
    );
    expect(answer.headers(R)).toBeNull();
    const other: Rejection = { index: 1, limit: 7, window: 'burst-1.m', retryAfter: 1 };
    expect(answer.body(other)).toBe(
      '{"error":"Rate limit exceeded","limit":7,"window":"burst-1.m","retry_after":1}',
    );
  });

  it('a template: a string that is exactly a placeholder takes its type; inside text it is text', () => {
    const answer = compileRejection(
      {
        status: 403,
        body: {
          error: 'quota exhausted',
          plan: 'free',
          retry_in: '{{retry_after}}',
          limit: '{{ limit }}',
          window: '{{window}}',
          route: '{{route}}',
          message: 'wait {{retry_after}}s: {{route}} allows {{limit}} per {{window}}',
          nested: [1, true, null, { at: '{{limit}}' }, 'a "quoted" \\ text\n'],
        },
        headers: {},
      },
      'tenant-api',
    );
    expect(answer.status).toBe(403);
    const text = answer.body(R);
    expect(text).toBe(
      '{"error":"quota exhausted","plan":"free","retry_in":123,"limit":100,"window":"hourly","route":"tenant-api",' +
        '"message":"wait 123s: tenant-api allows 100 per hourly","nested":[1,true,null,{"at":100},"a \\"quoted\\" \\\\ text\\n"]}',
    );
    expect(JSON.parse(text)).toMatchObject({ retry_in: 123, limit: 100 });
  });

  it('any JSON value is a template, a lone string or number included', () => {
    expect(
      compileRejection({ status: 429, body: 'slow down for {{retry_after}}s', headers: {} }, 'r').body(R),
    ).toBe('"slow down for 123s"');
    expect(compileRejection({ status: 429, body: '{{retry_after}}', headers: {} }, 'r').body(R)).toBe('123');
    expect(compileRejection({ status: 429, body: [], headers: {} }, 'r').body(R)).toBe('[]');
  });

  it('headers: fixed ones built once, placeholders filled per refusal, names lower-cased', () => {
    const fixed = compileRejection({ status: 429, body: null, headers: { 'X-Quota-Reason': 'hourly' } }, 'r');
    expect(fixed.headers(R)).toEqual({ 'x-quota-reason': 'hourly' });
    expect(fixed.headers(R)).toBe(fixed.headers(R));
    const filled = compileRejection(
      {
        status: 429,
        body: null,
        headers: { 'x-quota-reason': '{{window}}', 'X-Quota': '{{route}}:{{limit}}', 'X-Plain': 'p' },
      },
      'api',
    );
    expect(filled.headers(R)).toEqual({ 'x-quota-reason': 'hourly', 'x-quota': 'api:100', 'x-plain': 'p' });
  });
});

describe('splitPlaceholders', () => {
  it('splits text at known placeholders, spaces inside the braces allowed', () => {
    expect(splitPlaceholders('a {{limit}} b {{ window }}')).toEqual({
      ok: true,
      parts: ['a ', { placeholder: 'limit' }, ' b ', { placeholder: 'window' }],
    });
    expect(splitPlaceholders('no placeholder }} here')).toEqual({
      ok: true,
      parts: ['no placeholder }} here'],
    });
    expect(splitPlaceholders('')).toEqual({ ok: true, parts: [] });
  });

  it.each([
    ['{{limits}}', '{{limits}}', 'unknown placeholder {{limits}}'],
    ['x {{retry-after}}', '{{retry-after}}', 'unknown placeholder {{retry-after}}'],
    ['{{ }}', '{{ }}', 'unknown placeholder {{ }}'],
    ['{{limit', '{{limit', 'malformed placeholder "{{limit"'],
    ['{{{limit}}}', '{{{limit}}}', 'malformed placeholder "{{{limit}}}"'],
  ])('%j is refused, naming %j', (text, token, message) => {
    expect(splitPlaceholders(text)).toEqual({
      ok: false,
      token,
      error: `${message}; use {{limit}}, {{window}}, {{retry_after}}, {{route}}`,
    });
  });
});
