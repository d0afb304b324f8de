// The data plane's client limits from the environment: defaults, parsing, and errors that name the
// variable without echoing a long value back.
import { describe, expect, it } from 'vitest';
import { clientSettingsFromEnv, DEFAULT_CLIENT_SETTINGS } from '../../../proxy/http/client-settings.js';

function errorOf(env: Record<string, string>): Error {
  try {
    clientSettingsFromEnv(env);
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected clientSettingsFromEnv to throw');
}

describe('clientSettingsFromEnv', () => {
  it('gives the defaults for an empty environment', () => {
    expect(clientSettingsFromEnv({})).toEqual({
      headersTimeoutMs: 15_000,
      bodyTimeoutMs: 60_000,
      sendTimeoutMs: 60_000,
      maxHeaders: 100,
      underscores: false,
    });
    expect(clientSettingsFromEnv({ FLOODGATE_BODY_TIMEOUT: '' })).toEqual(DEFAULT_CLIENT_SETTINGS);
  });

  it('reads each variable', () => {
    expect(
      clientSettingsFromEnv({
        FLOODGATE_HEADERS_TIMEOUT: '2s',
        FLOODGATE_BODY_TIMEOUT: '5s',
        FLOODGATE_SEND_TIMEOUT: '1m',
        FLOODGATE_MAX_HEADERS: '250',
        FLOODGATE_UNDERSCORES_IN_HEADERS: '1',
      }),
    ).toEqual({
      headersTimeoutMs: 2_000,
      bodyTimeoutMs: 5_000,
      sendTimeoutMs: 60_000,
      maxHeaders: 250,
      underscores: true,
    });
    expect(clientSettingsFromEnv({ FLOODGATE_BODY_TIMEOUT: '750ms' }).bodyTimeoutMs).toBe(750);
    expect(clientSettingsFromEnv({ FLOODGATE_MAX_HEADERS: '1' }).maxHeaders).toBe(1);
    expect(clientSettingsFromEnv({ FLOODGATE_MAX_HEADERS: '10000' }).maxHeaders).toBe(10_000);
    expect(clientSettingsFromEnv({ FLOODGATE_UNDERSCORES_IN_HEADERS: '0' }).underscores).toBe(false);
  });

  it.each([
    ['FLOODGATE_HEADERS_TIMEOUT', 'soon'],
    ['FLOODGATE_BODY_TIMEOUT', '5'],
    ['FLOODGATE_SEND_TIMEOUT', '0s'],
    ['FLOODGATE_MAX_HEADERS', '0'],
    ['FLOODGATE_MAX_HEADERS', '10001'],
    ['FLOODGATE_MAX_HEADERS', '1.5'],
    ['FLOODGATE_MAX_HEADERS', '-1'],
    ['FLOODGATE_MAX_HEADERS', 'many'],
  ])('refuses %s=%s, naming the variable', (name, value) => {
    expect(errorOf({ [name]: value }).message).toContain(name);
  });

  it.each(['FLOODGATE_BODY_TIMEOUT', 'FLOODGATE_SEND_TIMEOUT', 'FLOODGATE_MAX_HEADERS'])(
    'does not echo a long value of %s',
    (name) => {
      const value = '9'.repeat(30) + 'x'.repeat(500);
      const message = errorOf({ [name]: value }).message;
      expect(message).toContain(name);
      expect(message).not.toContain(value);
      expect(message.length).toBeLessThan(300);
    },
  );

  // Both timeouts become Node timers (request-body.ts, forward.ts), which fire after 1 ms when given
  // more than 2^31 - 1 ms; the config's own timeouts stop at 24d (parseTimeout) for that reason.
  it.each([
    ['FLOODGATE_BODY_TIMEOUT', 'bodyTimeoutMs'],
    ['FLOODGATE_SEND_TIMEOUT', 'sendTimeoutMs'],
  ] as const)('refuses %s longer than a timer holds', (name, field) => {
    expect(clientSettingsFromEnv({ [name]: '24d' })[field]).toBe(24 * 86_400_000);
    expect(errorOf({ [name]: '25d' }).message).toContain(name);
  });
});
