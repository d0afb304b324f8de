// The "rate limit exceeded" line is rate-limited itself: one line per route, identity and window per
// interval, a global lines-per-second budget, bounded memory, and never the raw identity.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../core/clock.js';
import { headerIdentity } from '../../../proxy/http/identity.js';
import { type Rejection, RejectionLog } from '../../../proxy/observability/rejection-log.js';

function setup(options: { intervalMs?: number; perSecond?: number; maxTracked?: number } = {}) {
  const raw: string[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void raw.push(s) });
  const clock = new ManualClock(0);
  // A stand-in for the keyed hash: distinct per identity, and holding none of its text.
  const hashId = (id: string) => `hash-${id.length}-${id.charCodeAt(id.length - 1)}`;
  const log = new RejectionLog({ logger, clock, hashId, intervalMs: 1_000, perSecond: 100, ...options });
  const lines = () => raw.map((s) => JSON.parse(s) as Record<string, unknown>);
  const reject = (over: Partial<Rejection> = {}) =>
    log.record({
      route: 'search',
      identity: headerIdentity('alice'),
      window: '1m',
      limit: 10,
      retryAfter: 3,
      shadow: false,
      ...over,
    });
  return { raw, lines, clock, hashId, reject };
}

describe('RejectionLog', () => {
  it('writes the rejection with the hashed identity', () => {
    const { lines, hashId, reject } = setup();
    reject({ shadow: true });
    expect(lines()).toEqual([
      expect.objectContaining({
        msg: 'rate limit exceeded',
        route: 'search',
        identifier: hashId(headerIdentity('alice')),
        limit: 10,
        remaining: 0,
        window: '1m',
        retry_after: 3,
        shadow: true,
        suppressed: 0,
        unlogged: 0,
      }),
    ]);
  });

  it('writes one line per identity per interval, then counts the suppressed ones', () => {
    const { lines, clock, reject } = setup({ intervalMs: 1_000 });
    reject();
    reject();
    clock.advance(999);
    reject();
    expect(lines()).toHaveLength(1);
    clock.advance(1);
    reject();
    expect(lines()).toHaveLength(2);
    expect(lines()[1]).toMatchObject({ suppressed: 2 });
    clock.advance(1_000);
    reject();
    expect(lines()[2]).toMatchObject({ suppressed: 0 });
  });

  it('gives each identity, window and route its own line', () => {
    const { lines, hashId, reject } = setup();
    reject();
    reject({ identity: headerIdentity('bob') });
    reject({ window: '1h' });
    reject({ route: 'upload' });
    reject();
    const [alice, bob] = [hashId(headerIdentity('alice')), hashId(headerIdentity('bob'))];
    expect(lines().map((l) => `${l.route} ${l.window} ${l.identifier}`)).toEqual([
      `search 1m ${alice}`,
      `search 1m ${bob}`,
      `search 1h ${alice}`,
      `upload 1m ${alice}`,
    ]);
  });

  it('writes at most perSecond lines a second, and counts the ones it dropped', () => {
    const { lines, clock, hashId, reject } = setup({ perSecond: 2 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) reject({ identity: id });
    expect(lines()).toHaveLength(2);
    clock.advance(999);
    reject({ identity: 'f' });
    expect(lines()).toHaveLength(2);
    clock.advance(1);
    reject({ identity: 'g' });
    reject({ identity: 'h' });
    expect(lines().slice(2)).toEqual([
      expect.objectContaining({ identifier: hashId('g'), unlogged: 4 }),
      expect.objectContaining({ identifier: hashId('h'), unlogged: 0 }),
    ]);
  });

  it('forgets identities past maxTracked rather than growing', () => {
    const { lines, hashId, reject } = setup({ maxTracked: 2 });
    reject({ identity: 'a' });
    reject({ identity: 'b' });
    reject({ identity: 'a' }); // remembered: suppressed
    expect(lines()).toHaveLength(2);
    reject({ identity: 'c' }); // a third: the memory starts afresh with c alone
    reject({ identity: 'c' });
    expect(lines()).toHaveLength(3);
    reject({ identity: 'a' }); // forgotten: written again
    reject({ identity: 'b' }); // forgotten too, and the memory starts afresh once more
    reject({ identity: 'b' });
    expect(lines().map((l) => l.identifier)).toEqual(['a', 'b', 'c', 'a', 'b'].map(hashId));
  });

  it('never writes the raw identity', () => {
    const { raw, clock, reject } = setup();
    reject({ identity: headerIdentity('sk_live_SECRET') });
    reject({ identity: headerIdentity('sk_live_SECRET') });
    clock.advance(1_000);
    reject({ identity: headerIdentity('sk_live_SECRET') });
    expect(raw).toHaveLength(2);
    expect(raw.join('')).not.toContain('SECRET');
  });
});
