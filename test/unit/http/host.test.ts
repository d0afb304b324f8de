// Host names as routes compare them: one spelling for the request's Host and for the policy's
// match.host, so that case, a port or a trailing dot cannot move a request to another route.
import { describe, expect, it } from 'vitest';
import {
  canonicalHost,
  compileHostCondition,
  hostCovers,
  parseHostPattern,
} from '../../../proxy/http/host.js';

const pattern = (input: unknown) => {
  const r = parseHostPattern(input);
  return r.ok ? r.value : `error: ${r.error}`;
};

describe('canonicalHost (the request side)', () => {
  it.each([
    ['api.example.com', 'api.example.com'],
    ['API.Example.COM', 'api.example.com'],
    ['api.example.com.', 'api.example.com'],
    ['api.example.com:8080', 'api.example.com'],
    ['API.EXAMPLE.COM.:8080', 'api.example.com'],
    ['api.example.com:', 'api.example.com'],
    ['10.0.0.1:80', '10.0.0.1'],
    ['[::1]:8080', '[::1]'],
    ['[0:0:0:0:0:0:0:1]', '[::1]'],
    ['[2001:DB8::1]', '[2001:db8::1]'],
  ])('%s → %s', (raw, host) => {
    expect(canonicalHost(raw)).toBe(host);
  });

  it.each([
    ['', 'no Host at all (HTTP/1.0)'],
    ['api.example.com:80x', 'a port that is not digits'],
    ['api.example.com:80:80', 'two ports'],
    ['::1', 'an unbracketed IPv6 address'],
    ['[::1', 'an unclosed bracket'],
    ['[zz::1]', 'no IPv6 address'],
    ['[::1]x', 'junk after the bracket'],
    ['api.example.com..', 'two trailing dots'],
    ['[fe80::1%25eth0]', 'a zone'],
  ])('%j is no host (%s)', (raw) => {
    expect(canonicalHost(raw)).toBe('');
  });
});

describe('parseHostPattern (the policy side)', () => {
  it.each([
    ['api.example.com', 'api.example.com'],
    ['API.Example.com.', 'api.example.com'],
    ['*.Example.com', '*.example.com'],
    ['internal_host', 'internal_host'],
    ['10.0.0.1', '10.0.0.1'],
    ['::1', '[::1]'],
    ['[0::1]', '[::1]'],
  ])('%s → %s', (input, out) => {
    expect(pattern(input)).toBe(out);
  });

  it.each([
    [
      'api.example.com:8080',
      'invalid host "api.example.com:8080": hosts are compared without their port; leave it out',
    ],
    ['[::1]:80', 'invalid host "[::1]:80": hosts are compared without their port; leave it out'],
    ['*.exa*mple.com', 'invalid host "*.exa*mple.com": a wildcard is only a leading "*." (*.example.com)'],
    ['*', 'invalid host "*": a wildcard is only a leading "*." (*.example.com)'],
    ['api.*.com', 'invalid host "api.*.com": a wildcard is only a leading "*." (*.example.com)'],
    ['*.10.0.0.1', 'invalid host "*.10.0.0.1": a wildcard needs a host name after "*."'],
    ['999.1.1.1', 'invalid host "999.1.1.1": not an IPv4 address'],
    ['a..b', 'invalid host "a..b": use letters, digits, "-" and "_" in dot-separated labels of at most 63'],
    [
      '-a.com',
      'invalid host "-a.com": use letters, digits, "-" and "_" in dot-separated labels of at most 63',
    ],
    ['a b', 'invalid host "a b": use letters, digits, "-" and "_" in dot-separated labels of at most 63'],
    ['[zz]', 'invalid host "[zz]": not an IPv6 address'],
    ['', 'expected a host name (api.example.com), a wildcard (*.example.com) or an IP address, got ""'],
    [7, 'expected a host name (api.example.com), a wildcard (*.example.com) or an IP address, got 7'],
  ])('%j is refused', (input, message) => {
    expect(pattern(input)).toBe(`error: ${message}`);
  });

  it('refuses a label longer than 63 and a name longer than 253', () => {
    expect(pattern(`${'a'.repeat(64)}.com`)).toMatch(/^error: invalid host/);
    expect(pattern(`${'a'.repeat(63)}.com`)).toBe(`${'a'.repeat(63)}.com`);
    expect(pattern(Array.from({ length: 64 }, () => 'abc').join('.'))).toMatch(/^error: invalid host/);
  });
});

describe('compileHostCondition', () => {
  const exact = compileHostCondition(['api.example.com']);
  const wild = compileHostCondition(['*.example.com']);

  it('an exact host takes that host alone', () => {
    expect(
      ['api.example.com', 'evil.api.example.com', 'api.example.com.evil.com', 'example.com'].map(exact),
    ).toEqual([true, false, false, false]);
  });

  it('a wildcard takes one or more labels under its name, never the name itself nor a look-alike', () => {
    const hosts = [
      'api.example.com',
      'evil.api.example.com',
      'example.com',
      'xexample.com',
      'example.com.evil.com',
      '.example.com',
      'a..example.com',
      'a/b.example.com',
      'a b.example.com',
    ];
    expect(hosts.map(wild)).toEqual([true, true, false, false, false, false, false, false, false]);
  });

  it('a list takes any of its hosts', () => {
    const either = compileHostCondition(['a.test', '*.b.test', '[::1]']);
    expect(['a.test', 'x.b.test', '[::1]', 'b.test', 'x.a.test'].map(either)).toEqual([
      true,
      true,
      true,
      false,
      false,
    ]);
  });
});

describe('hostCovers (which route can shadow which)', () => {
  it.each([
    ['a.test', 'a.test', true],
    ['*.test', 'a.test', true],
    ['*.test', '*.a.test', true],
    ['*.test', '*.test', true],
    ['*.a.test', '*.test', false],
    ['*.test', 'test', false],
    ['a.test', '*.test', false],
    ['a.test', 'b.test', false],
  ])('%s covers %s: %s', (a, b, covers) => {
    expect(hostCovers(a, b)).toBe(covers);
  });
});
