// The admin listener's admission rules as pure functions: the Cookie header the data plane forwards
// without the admin session, sessions that expire and die with their token, which Host names reach
// the admin listener, and which browser requests count as coming from another origin.
import { createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  type AdminCredential,
  crossOrigin,
  hostAllowed,
  SESSION_MAX_AGE_MS,
  sessionCookie,
  sessionValid,
  sessionValue,
  stripAdminCookie,
} from '../../../proxy/http/admin-auth.js';

const TOKEN = 'unit-admin-token';
const T0 = Date.UTC(2026, 1, 21, 10, 0, 0);

describe('stripAdminCookie', () => {
  it('removes every floodgate_admin pair and keeps the others as they were', () => {
    expect(stripAdminCookie('a=1; floodgate_admin=v2.1.x; b=two=2')).toBe('a=1; b=two=2');
    expect(stripAdminCookie('floodgate_admin=x;theme=dark;floodgate_admin=y')).toBe('theme=dark');
    expect(stripAdminCookie(' floodgate_admin = x ; sid=abc')).toBe('sid=abc');
    expect(stripAdminCookie('sid=abc')).toBe('sid=abc');
  });

  it('returns null when nothing but the admin cookie was there', () => {
    expect(stripAdminCookie('floodgate_admin=v2.1.x')).toBeNull();
    expect(stripAdminCookie('floodgate_admin=a; floodgate_admin=b;')).toBeNull();
    expect(stripAdminCookie('')).toBeNull();
    expect(stripAdminCookie(' ; ')).toBeNull();
  });

  it('leaves cookies whose name only resembles it', () => {
    expect(stripAdminCookie('floodgate_admin2=x; xfloodgate_admin=y; Floodgate_Admin=z')).toBe(
      'floodgate_admin2=x; xfloodgate_admin=y; Floodgate_Admin=z',
    );
    // A value may contain the name; only the name decides.
    expect(stripAdminCookie('note=floodgate_admin=1')).toBe('note=floodgate_admin=1');
    // A nameless pair is kept as is.
    expect(stripAdminCookie('flag; floodgate_admin=x')).toBe('flag');
  });
});

describe('sessions', () => {
  it('carry their issue time and Max-Age, never the token', () => {
    const set = sessionCookie(TOKEN, T0);
    expect(set).toMatch(new RegExp(`^floodgate_admin=v2\\.${T0}\\.[A-Za-z0-9_-]{43}; `));
    expect(set).toContain(`Max-Age=${SESSION_MAX_AGE_MS / 1000}`);
    expect(set).toContain('HttpOnly');
    expect(set).toContain('SameSite=Strict');
    expect(set).not.toContain(TOKEN);
    expect(SESSION_MAX_AGE_MS).toBe(12 * 60 * 60 * 1000);
  });

  it('are valid for SESSION_MAX_AGE_MS after issue, and not a millisecond longer', () => {
    const v = sessionValue(TOKEN, T0);
    expect(sessionValid(v, TOKEN, T0)).toBe(true);
    expect(sessionValid(v, TOKEN, T0 + SESSION_MAX_AGE_MS - 1)).toBe(true);
    expect(sessionValid(v, TOKEN, T0 + SESSION_MAX_AGE_MS)).toBe(false);
    // Issued "in the future": the clock stepped back, or the value was made up.
    expect(sessionValid(v, TOKEN, T0 - 1)).toBe(false);
  });

  it('die with their token, and the issue time cannot be moved', () => {
    const v = sessionValue(TOKEN, T0);
    expect(sessionValid(v, 'another-token', T0)).toBe(false);
    const mac = v.split('.')[2];
    expect(sessionValid(`v2.${T0 + 60_000}.${mac}`, TOKEN, T0 + 60_000)).toBe(false);
    // The never-expiring value of the first cookie format is no longer a session.
    const v1 = createHmac('sha256', TOKEN).update('floodgate admin session v1').digest('base64url');
    expect(sessionValid(v1, TOKEN, T0)).toBe(false);
    expect(sessionValid('', TOKEN, T0)).toBe(false);
    expect(sessionValid(`v2.${T0}.`, TOKEN, T0)).toBe(false);
  });
});

describe('hostAllowed', () => {
  it('on loopback: its own address, 127.0.0.1, [::1] and localhost, whatever the port', () => {
    for (const host of [
      '127.0.0.1:9090',
      'localhost:9090',
      'LOCALHOST:9090',
      '[::1]:9090',
      '127.0.0.1',
      'localhost:19090',
    ]) {
      expect(hostAllowed(host, '127.0.0.1'), host).toBe(true);
    }
    expect(hostAllowed('127.0.0.2:9090', '127.0.0.2')).toBe(true);
    expect(hostAllowed('[::1]:9090', '::1')).toBe(true);
    expect(hostAllowed('localhost:9090', '::1')).toBe(true);
  });

  it('refuses names that DNS could point anywhere, and malformed Hosts', () => {
    for (const host of [
      'evil.example:9090',
      'evil.example',
      'localhost.evil.example:9090',
      'localhost.:9090',
      '127.0.0.1.nip.io:9090',
      'evil.example@127.0.0.1:9090',
      '127.0.0.1:9090/x',
      '127.0.0.1:9090 ',
      '',
      '[::1',
      undefined,
    ]) {
      expect(hostAllowed(host, '127.0.0.1'), String(host)).toBe(false);
      expect(hostAllowed(host, '0.0.0.0'), String(host)).toBe(false);
    }
  });

  it('on loopback, refuses another machine’s address', () => {
    expect(hostAllowed('10.0.0.5:9090', '127.0.0.1')).toBe(false);
    expect(hostAllowed('[2001:db8::1]:9090', '::1')).toBe(false);
  });

  it('on a wildcard: any IP literal (what probes and scrapers send) and localhost', () => {
    for (const wildcard of ['0.0.0.0', '::']) {
      for (const host of [
        '10.1.2.3:9090',
        '127.0.0.1:9090',
        '[fd00::7]:9090',
        '[::1]:9090',
        'localhost:9090',
      ]) {
        expect(hostAllowed(host, wildcard), `${host} on ${wildcard}`).toBe(true);
      }
      expect(hostAllowed('floodgate.internal:9090', wildcard)).toBe(false);
    }
  });

  it('on one other address: that address only', () => {
    expect(hostAllowed('10.0.0.5:9090', '10.0.0.5')).toBe(true);
    expect(hostAllowed('10.0.0.6:9090', '10.0.0.5')).toBe(false);
    expect(hostAllowed('localhost:9090', '10.0.0.5')).toBe(false);
    expect(hostAllowed('[2001:DB8:0:0::1]:9090', '2001:db8::1')).toBe(true);
  });
});

describe('crossOrigin', () => {
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  const host = { host: '127.0.0.1:9090' };
  const refused = (headers: Record<string, string>, credential: AdminCredential = 'open') =>
    crossOrigin(req({ ...host, ...headers }), credential) !== null;

  it('lets through what curl and scripts send: no Origin, no Sec-Fetch-*', () => {
    expect(refused({})).toBe(false);
    expect(refused({}, 'bearer')).toBe(false);
  });

  it('lets through the admin’s own page', () => {
    expect(refused({ origin: 'http://127.0.0.1:9090', 'sec-fetch-site': 'same-origin' })).toBe(false);
    expect(refused({ 'sec-fetch-site': 'none' })).toBe(false);
    expect(
      refused(
        { origin: 'http://127.0.0.1:9090', 'sec-fetch-site': 'same-origin', 'x-floodgate-admin': '1' },
        'cookie',
      ),
    ).toBe(false);
  });

  it('refuses pages of other sites and of other ports of this host, even with the Bearer token', () => {
    for (const credential of ['open', 'bearer', 'cookie'] as const) {
      expect(refused({ 'sec-fetch-site': 'cross-site', 'x-floodgate-admin': '1' }, credential)).toBe(true);
      expect(refused({ 'sec-fetch-site': 'same-site', 'x-floodgate-admin': '1' }, credential)).toBe(true);
      expect(refused({ origin: 'http://evil.example', 'x-floodgate-admin': '1' }, credential)).toBe(true);
      expect(refused({ origin: 'http://127.0.0.1:8080', 'x-floodgate-admin': '1' }, credential)).toBe(true);
      expect(refused({ origin: 'null', 'x-floodgate-admin': '1' }, credential)).toBe(true);
    }
  });

  it('asks a cookie session for the dashboard’s header, which a form cannot send', () => {
    expect(refused({}, 'cookie')).toBe(true);
    expect(refused({ origin: 'http://127.0.0.1:9090' }, 'cookie')).toBe(true);
    expect(refused({ 'x-floodgate-admin': 'yes' }, 'cookie')).toBe(true);
    expect(refused({ 'x-floodgate-admin': '1' }, 'cookie')).toBe(false);
  });
});
