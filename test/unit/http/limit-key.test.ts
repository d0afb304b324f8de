// What a key reads of a request: the same value for every spelling the upstream would read alike, a
// refusal for a repeated query parameter, and identities that keep kinds and tuples apart.
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { LimitKey } from '../../../proxy/config/schema.js';
import { compositeIdentity } from '../../../proxy/http/identity.js';
import {
  compileKey,
  identityOfValues,
  keyPartValues,
  pathSegment,
  pathSegmentOf,
  queryValue,
} from '../../../proxy/http/limit-key.js';
import { normalizeTarget } from '../../../proxy/http/normalize-path.js';

const IP_KEY = 'ip:203.0.113.7';

function idOf(key: LimitKey, url: string, headers: IncomingHttpHeaders = {}): unknown {
  return compileKey(key)({ headers }, IP_KEY, normalizeTarget(url)!);
}

describe('path segments', () => {
  it('reads the Nth segment of the normalized path, with every spelling of one id alike', () => {
    const n = (url: string) => pathSegment(normalizeTarget(url)!.matchPath, 3);
    for (const url of [
      '/v1/users/abc',
      '/v1/users/ABC',
      '/v1/users/%41bc',
      '/v1/users/%61%62%63',
      '/v1/users/abc/',
      '/v1/users/abc;v=1',
      '/v1/./users/x/../abc',
      '/v1/users/abc/orders/7?x=1',
    ])
      expect([url, n(url)]).toEqual([url, 'abc']);
    expect(n('/v1/users/a%21')).toBe('a!');
    expect(n('/v1/users/a!')).toBe('a!');
    // UTF-8 escapes become their bytes; hex digits in either case are one.
    expect(n('/v1/users/%C3%A9')).toBe('\u00c3\u00a9');
    expect(n('/v1/users/%c3%a9')).toBe(n('/v1/users/%C3%A9'));
    expect(n('/v1/users')).toBe('');
    expect(n('/v1')).toBe('');
    expect(pathSegment('/', 1)).toBe('');
  });

  it('reads a written value (policy, admin) the way the data plane reads the path', () => {
    for (const written of ['ABC', 'abc', '%41bc', '%41BC', '%61%62%63'])
      expect([written, pathSegmentOf(written)]).toEqual([written, 'abc']);
    expect(pathSegmentOf('é')).toBe(pathSegment(normalizeTarget('/a/b/%C3%A9')!.matchPath, 3));
    expect(pathSegmentOf('a%21')).toBe('a!');
  });
});

describe('query values', () => {
  it('decodes names and values as forms do, and marks a repeated parameter', () => {
    expect(queryValue('/s?user=b%6Fb', 'user')).toBe('bob');
    expect(queryValue('/s?us%65r=bob', 'user')).toBe('bob');
    expect(queryValue('/s?user=a+b', 'user')).toBe('a b');
    expect(queryValue('/s?user=', 'user')).toBe('');
    expect(queryValue('/s?USER=x', 'user')).toBeNull();
    expect(queryValue('/s', 'user')).toBeNull();
    // Invalid UTF-8 reads as U+FFFD, never as a lone surrogate.
    expect(queryValue('/s?user=%FF', 'user')).toBe('\ufffd');
    expect(typeof queryValue('/s?user=a&user=b', 'user')).toBe('symbol');
    expect(typeof queryValue('/s?user=a&us%65r=a', 'user')).toBe('symbol');
  });
});

describe('compileKey', () => {
  it('a single part: ip, a header (falling back to the ip), a path segment, a query value', () => {
    expect(idOf([{ type: 'ip' }], '/x')).toBe(IP_KEY);
    const header: LimitKey = [{ type: 'header', name: 'x-api-key' }];
    expect(idOf(header, '/x', { 'x-api-key': 'k1' })).toBe('h:k1');
    expect(idOf(header, '/x', { 'x-api-key': '' })).toBe(IP_KEY);
    expect(idOf(header, '/x')).toBe(IP_KEY);
    expect(idOf([{ type: 'path', segment: 3 }], '/v1/users/ABC')).toBe('p:abc');
    expect(idOf([{ type: 'path', segment: 3 }], '/v1/users')).toBe('p:');
    const query: LimitKey = [{ type: 'query', name: 'user' }];
    expect(idOf(query, '/s?user=bob')).toBe('q:bob');
    expect(idOf(query, '/s')).toBe('q:');
    expect(idOf(query, '/s?user=a&user=b')).toEqual({ refused: 'more than one user query parameter' });
    // An absolute-form target is read by its path and query too.
    expect(idOf(query, 'http://h.example/s?user=bob')).toBe('q:bob');
  });

  it('a composite key: every part in order, an absent one empty, a repeated parameter refused', () => {
    const key: LimitKey = [
      { type: 'header', name: 'x-api-key' },
      { type: 'ip' },
      { type: 'path', segment: 2 },
      { type: 'query', name: 'user' },
    ];
    expect(idOf(key, '/u/ABC?user=bob', { 'x-api-key': 'k1' })).toBe(
      compositeIdentity(['k1', IP_KEY, 'abc', 'bob']),
    );
    expect(idOf(key, '/u/ABC')).toBe(compositeIdentity(['', IP_KEY, 'abc', '']));
    expect(idOf(key, '/u/ABC?user=1&user=2', { 'x-api-key': 'k1' })).toEqual({
      refused: 'more than one user query parameter',
    });
    // A header value that spells another tuple's encoding stays its own identity.
    const pair: LimitKey = [
      { type: 'header', name: 'a' },
      { type: 'header', name: 'b' },
    ];
    expect(idOf(pair, '/', { a: 'x2:yy', b: '' })).not.toBe(idOf(pair, '/', { a: 'x', b: 'yy' }));
    expect(idOf(pair, '/', { a: 'x:', b: 'y' })).not.toBe(idOf(pair, '/', { a: 'x', b: ':y' }));
  });

  it('identityOfValues gives /admin/limits the identity the data plane counts', () => {
    const key: LimitKey = [
      { type: 'header', name: 'x-api-key' },
      { type: 'ip' },
      { type: 'path', segment: 3 },
    ];
    const counted = compileKey(key)(
      { headers: { 'x-api-key': 'k1' } },
      'ip:127.0.0.1',
      normalizeTarget('/v1/users/ABC')!,
    );
    expect(identityOfValues(key, ['k1', '::ffff:127.0.0.1', '%41bc'], 64)).toBe(counted);
    expect(identityOfValues([{ type: 'ip' }], ['2001:db8::1'], 64)).toBe('ip:2001:db8:0:0:0:0:0:0/64');
    expect(identityOfValues([{ type: 'query', name: 'user' }], ['bob'], 64)).toBe('q:bob');
  });

  it('keyPartValues shows each part as explain prints it', () => {
    const key: LimitKey = [
      { type: 'header', name: 'x-api-key' },
      { type: 'ip' },
      { type: 'query', name: 'user' },
    ];
    const t = normalizeTarget('/s?user=a&user=b')!;
    expect(keyPartValues(key, { 'x-api-key': 'k1' }, t, null)).toEqual([
      { kind: 'value', value: 'k1' },
      { kind: 'absent' },
      { kind: 'duplicate' },
    ]);
  });
});
