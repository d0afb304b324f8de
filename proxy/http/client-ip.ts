// Who the client is. X-Forwarded-For is believed only when the TCP peer is a trusted proxy,
// and then only up to the first hop that is not itself trusted (walking right to left), so a
// client cannot prepend spoofed addresses to pick its own rate-limit key.
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export interface ClientIpResolver {
  /** Whether `ip` (canonical) is one of the trusted proxies. */
  trusts(ip: string): boolean;
  /** The client behind `peer` (canonical): the peer itself unless it is trusted. */
  resolve(peer: string, xForwardedFor: string | string[] | undefined): string;
}

/** Strips the IPv4-mapped IPv6 prefix, so 127.0.0.1 and ::ffff:127.0.0.1 are one client. */
export function canonicalIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

/** Whether a canonical address is in `cidrs` (IPs or CIDR blocks, IPv4 or IPv6); null when the list is empty. */
export function compileAddressList(cidrs: readonly string[]): ((ip: string) => boolean) | null {
  if (cidrs.length === 0) return null;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [addr = '', bits] = cidr.split('/');
    const type = isIPv6(addr) ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return (ip) => {
    if (isIPv4(ip)) return list.check(ip, 'ipv4');
    return isIPv6(ip) && list.check(ip, 'ipv6');
  };
}

export function compileTrustedProxies(cidrs: readonly string[]): ClientIpResolver {
  const trusted = compileAddressList(cidrs);
  if (trusted === null) return { trusts: () => false, resolve: (peer) => peer };
  return {
    trusts: trusted,
    resolve(peer, xff) {
      let client = peer;
      if (!xff || !trusted(client)) return client;
      const hops = (Array.isArray(xff) ? xff.join(',') : xff).split(',');
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = canonicalIp(hops[i]!.trim());
        if (!isIPv4(hop) && !isIPv6(hop)) break; // garbage ends the chain we can vouch for
        client = hop;
        if (!trusted(hop)) break;
      }
      return client;
    },
  };
}
