// Identities are namespaced by kind, and an IPv6 client is counted by its network prefix.
import { describe, expect, it } from 'vitest';
import { headerIdentity, ipIdentity } from '../../../proxy/http/identity.js';

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
