// The canonical request target: routing must not be skipped by spelling a path differently, while the
// upstream still receives the path's original case, parameters, trailing slash and query.
import { describe, expect, it } from 'vitest';
import { normalizeTarget } from '../../../proxy/http/normalize-path.js';

const match = (url: string) => normalizeTarget(url)?.matchPath;
const forward = (url: string) => normalizeTarget(url)?.forwardPath;

describe('normalizeTarget', () => {
  it('passes a canonical origin-form target through untouched', () => {
    expect(normalizeTarget('/v1/search?q=Hello')).toEqual({
      matchPath: '/v1/search',
      forwardPath: '/v1/search?q=Hello',
      authority: null,
    });
    expect(normalizeTarget('/')).toEqual({ matchPath: '/', forwardPath: '/', authority: null });
  });

  it('refuses a fragment', () => {
    expect(normalizeTarget('/transcribe#1')).toBeNull();
    expect(normalizeTarget('/transcribe?x=1#1')).toBeNull();
    expect(normalizeTarget('http://a/transcribe#1')).toBeNull();
  });

  it('routes an absolute-form target by its path and reports its authority', () => {
    expect(normalizeTarget('http://a/v1/search')).toEqual({
      matchPath: '/v1/search',
      forwardPath: '/v1/search',
      authority: 'a',
    });
    expect(normalizeTarget('https://api.example:8443/V1/x/../Search')).toEqual({
      matchPath: '/v1/search',
      forwardPath: '/V1/Search',
      authority: 'api.example:8443',
    });
    expect(normalizeTarget('http://a')).toEqual({ matchPath: '/', forwardPath: '/', authority: 'a' });
    expect(normalizeTarget('http://a?x=1')).toEqual({ matchPath: '/', forwardPath: '/?x=1', authority: 'a' });
  });

  it('refuses userinfo, other schemes, asterisk and authority forms', () => {
    for (const url of ['http://u@a/x', 'http://u:p@a/x', 'ftp://a/x', '*', 'a:443', 'http:///x', ''])
      expect(normalizeTarget(url), url).toBeNull();
  });

  it('drops path parameters for matching but forwards them', () => {
    expect(normalizeTarget('/v1/search;x')).toEqual({
      matchPath: '/v1/search',
      forwardPath: '/v1/search;x',
      authority: null,
    });
    expect(match('/v1;jsessionid=1/search')).toBe('/v1/search');
    expect(match('/open/..;/limited')).toBe('/limited');
  });

  it('drops a trailing slash for matching only', () => {
    expect(normalizeTarget('/v1/search/')).toEqual({
      matchPath: '/v1/search',
      forwardPath: '/v1/search/',
      authority: null,
    });
    expect(forward('/v1/search/?q=1')).toBe('/v1/search/?q=1');
    expect(normalizeTarget('//')).toEqual({ matchPath: '/', forwardPath: '/', authority: null });
  });

  it('folds case for matching and keeps it for forwarding', () => {
    expect(normalizeTarget('/V1/Search')).toEqual({
      matchPath: '/v1/search',
      forwardPath: '/V1/Search',
      authority: null,
    });
  });

  it('resolves dot segments and empty segments', () => {
    expect(match('/a/../limited')).toBe('/limited');
    expect(match('/a/./b')).toBe('/a/b');
    expect(match('/../../limited')).toBe('/limited');
    expect(match('//limited//x')).toBe('/limited/x');
    expect(forward('/a/../b//c/.')).toBe('/b/c');
    expect(forward('/a/..')).toBe('/');
  });

  it('decodes unreserved escapes, including encoded dots, and leaves the rest encoded', () => {
    expect(normalizeTarget('/%74ranscribe')).toEqual({
      matchPath: '/transcribe',
      forwardPath: '/transcribe',
      authority: null,
    });
    expect(normalizeTarget('/%54%7e')).toEqual({ matchPath: '/t~', forwardPath: '/T~', authority: null });
    expect(match('/open/%2e%2E/limited')).toBe('/limited');
    expect(forward('/a%20b')).toBe('/a%20b');
    expect(forward('/a%3Fb')).toBe('/a%3Fb');
  });

  it('refuses an encoded slash or backslash in the path', () => {
    for (const url of ['/open/..%2Flimited', '/open/..%2flimited', '/open/..%5Climited', '/a%5cb'])
      expect(normalizeTarget(url), url).toBeNull();
    // In the query they are data, not separators.
    expect(forward('/a?next=%2F%5C')).toBe('/a?next=%2F%5C');
  });

  it('reads backslashes as slashes', () => {
    expect(normalizeTarget('/open\\..\\limited')).toEqual({
      matchPath: '/limited',
      forwardPath: '/limited',
      authority: null,
    });
  });

  it('forwards the query untouched', () => {
    expect(forward('/A/./b?X=%2F/../Y;z')).toBe('/A/b?X=%2F/../Y;z');
    expect(match('/A/./b?X=1')).toBe('/a/b');
  });
});
