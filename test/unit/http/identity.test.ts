// Identities are namespaced by kind, and an IPv6 client is counted by its network prefix.
import { describe, expect, it } from 'vitest';
import {
  compositeIdentity,
  headerIdentity,
  ipIdentity,
  pathIdentity,
  queryIdentity,
} from '../../../proxy/http/identity.js';

describe('ipIdentity', () => {
  it('keeps an IPv4 address as it is', () => {
    expect(ipIdentity('1.2.3.4', 64)).toBe('ip:1.2.3.4');
  });

  it('gives every address of one /64 the same identity, and other /64s another', () => {
    const a = ipIdentity('2001:db8:0:1::1', 64);
    expect(a).toBe('ip:2001:db8:0:1:0:0:0:0/64');
    expect(ipIdentity('2001:db8:0:1:ffff:ffff:ffff:ffff', 64)).toBe(a);
    expect(ipIdentity('2001:db8:0:2::1', 64)).not.toBe(a);
  });

  it('reads compressed, zero-padded, zoned and IPv4-tailed addresses', () => {
    expect(ipIdentity('2001:0db8:0000:0001:0000::5', 64)).toBe('ip:2001:db8:0:1:0:0:0:0/64');
    expect(ipIdentity('::1', 64)).toBe('ip:0:0:0:0:0:0:0:0/64');
    expect(ipIdentity('::', 64)).toBe('ip:0:0:0:0:0:0:0:0/64');
    expect(ipIdentity('fe80::1%eth0', 64)).toBe('ip:fe80:0:0:0:0:0:0:0/64');
    expect(ipIdentity('fe80::1%eth0', 127)).toBe(ipIdentity('fe80::1', 127));
    // The IPv4 tail is the last two groups: 1.2.3.4 = 102:304.
    expect(ipIdentity('64:ff9b::1.2.3.4', 64)).toBe('ip:64:ff9b:0:0:0:0:0:0/64');
    expect(ipIdentity('64:ff9b::1.2.3.4', 120)).toBe('ip:64:ff9b:0:0:0:0:102:300/120');
    expect(ipIdentity('64:ff9b::1.2.3.4', 127)).toBe(ipIdentity('64:ff9b::102:304', 127));
  });

  it('keeps the whole address at prefix 128', () => {
    expect(ipIdentity('2001:db8::1', 128)).toBe('ip:2001:db8::1');
    expect(ipIdentity('2001:db8::2', 128)).not.toBe(ipIdentity('2001:db8::1', 128));
  });

  it('groups more addresses under a shorter prefix, masking within a group', () => {
    expect(ipIdentity('2001:db8:1:2::1', 48)).toBe('ip:2001:db8:1:0:0:0:0:0/48');
    expect(ipIdentity('2001:db8:1:3::1', 48)).toBe(ipIdentity('2001:db8:1:2::1', 48));
    expect(ipIdentity('2001:db8:1:3::1', 64)).not.toBe(ipIdentity('2001:db8:1:2::1', 64));
    expect(ipIdentity('2001:db8:1:2ff::', 56)).toBe('ip:2001:db8:1:200:0:0:0:0/56');
    expect(ipIdentity('2001:db8:2::', 48)).not.toBe(ipIdentity('2001:db8:1::', 48));
  });
});

describe('headerIdentity', () => {
  it('is namespaced, so it never equals an IP identity', () => {
    expect(headerIdentity('k')).toBe('h:k');
    expect(headerIdentity('1.2.3.4')).not.toBe(ipIdentity('1.2.3.4', 64));
    expect(headerIdentity('ip:1.2.3.4')).not.toBe(ipIdentity('1.2.3.4', 64));
    expect(headerIdentity('ip:1.2.3.4').startsWith('ip:')).toBe(false);
  });
});

describe('compositeIdentity', () => {
  /** Every way of cutting `text` into `n` parts (each possibly empty). */
  function splits(text: string, n: number): string[][] {
    if (n === 1) return [[text]];
    const out: string[][] = [];
    for (let i = 0; i <= text.length; i++)
      for (const rest of splits(text.slice(i), n - 1)) out.push([text.slice(0, i), ...rest]);
    return out;
  }

  it('gives no two different tuples one identity, whatever separators or digits the values hold', () => {
    // Every cut of strings made of the encoding's own characters (digits, ':', 'k') into 2 and 3
    // parts: a separator or a forged length prefix inside a value must not make two tuples alike.
    const seen = new Map<string, string>();
    for (const text of ['1:a1:b', 'k2:ab', '10:0123456789', ':::', '1:1:1:', 'a|b|c', 'k1:k']) {
      for (const n of [2, 3]) {
        for (const tuple of splits(text, n)) {
          const id = compositeIdentity(tuple);
          const key = JSON.stringify(tuple);
          const prior = seen.get(id);
          expect(prior === undefined || prior === key, `${prior} and ${key} both give ${id}`).toBe(true);
          seen.set(id, key);
        }
      }
    }
    expect(seen.size).toBeGreaterThan(100);
  });

  it('tells apart the classic separator confusions and empty parts', () => {
    const pairs: [string[], string[]][] = [
      [
        ['a|b', 'c'],
        ['a', 'b|c'],
      ],
      [
        ['a:b', 'c'],
        ['a', 'b:c'],
      ],
      [
        ['1:a', ''],
        ['', '1:a'],
      ],
      [['', ''], ['']],
      [['a', ''], ['a']],
      [['1:a1:b'], ['a', 'b']],
      // Length counts characters, not bytes: é is one unit, as is its latin1 byte form.
      [
        ['é', 'x'],
        ['Ã©', 'x'],
      ],
    ];
    for (const [a, b] of pairs) expect(compositeIdentity(a)).not.toBe(compositeIdentity(b));
    expect(compositeIdentity(['a', 'b'])).toBe(compositeIdentity(['a', 'b']));
  });

  it('never equals a single-part identity', () => {
    for (const v of ['', 'x', 'k1:x']) {
      const c = compositeIdentity([v, v]);
      for (const single of [headerIdentity(v), pathIdentity(v), queryIdentity(v), ipIdentity('1.2.3.4', 64)])
        expect(c).not.toBe(single);
    }
  });
});
