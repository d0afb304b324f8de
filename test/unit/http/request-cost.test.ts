// What a request costs: a fixed number, or a trusted proxy's header read strictly.
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { parseCost, requestCost } from '../../../proxy/http/request-cost.js';

const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe('parseCost', () => {
  it('takes a plain decimal integer from 1 to max, and nothing else', () => {
    expect(['1', '7', '50'].map((v) => parseCost(v, 50))).toEqual([1, 7, 50]);
    const bad = [
      '',
      '0',
      '00',
      '05',
      '-1',
      '+5',
      '5.0',
      '1e3',
      '0x10',
      '5, 5',
      '5 5',
      ' 5',
      '51',
      '٥',
      '9'.repeat(17),
    ];
    for (const v of bad) expect(parseCost(v, 50), JSON.stringify(v)).toBe(0);
    // Up to 16 digits: beyond any window's limit, and exact as a double.
    expect(parseCost('9007199254740991', Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER);
  });
});

describe('requestCost', () => {
  it('a fixed cost whatever the request says', () => {
    const c = requestCost({ type: 'fixed', units: 5 });
    expect(c.header).toBeNull();
    expect(c.of(req({ 'x-request-cost': '1' }), true)).toBe(5);
  });

  it("a header cost: a trusted proxy's value, the default otherwise, 0 for a bad value", () => {
    const c = requestCost({ type: 'header', name: 'x-request-cost', default: 2, max: 10 });
    expect(c.header).toBe('x-request-cost');
    expect(c.of(req({ 'x-request-cost': '7' }), true)).toBe(7);
    expect(c.of(req({}), true)).toBe(2);
    expect(c.of(req({ 'x-request-cost': '11' }), true)).toBe(0);
    expect(c.of(req({ 'x-request-cost': '7' }), false)).toBe(2);
    expect(c.of(req({ 'x-request-cost': 'junk' }), false)).toBe(2);
    expect(c.invalid).toBe('x-request-cost must be a whole number from 1 to 10');
  });
});
