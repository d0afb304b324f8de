// The benchmark's rule for when a req/s figure measured its system under test, and the multi-core
// scenario's core layout: both decide what the benchmark claims, so both are pinned down here.
import { describe, expect, it } from 'vitest';
import { heldBack, SATURATED, throughputVerdict } from '../../bench/lib/saturation.js';
import { MIN_CORES, multiCoreLayout } from '../../bench/macro/multicore.js';

const pinned = { sut: 0, load: 1 };

describe('heldBack', () => {
  it('passes a SUT that used its whole core while the load generator had room', () => {
    expect(heldBack({ sut: 0.98, harness: 0.75, coreBusy: [0.99, 0.78] }, pinned)).toBeNull();
  });

  it('flags a run whose load generator and upstream filled their core', () => {
    expect(heldBack({ sut: 0.4, harness: 0.95, coreBusy: [0.42, 0.97] }, pinned)).toBe(
      'load generator saturated',
    );
  });

  it('flags a full load core even when others filled it (Redis there, say)', () => {
    expect(heldBack({ sut: 0.8, harness: 0.7, coreBusy: [0.82, SATURATED] }, pinned)).toBe(
      'load generator saturated',
    );
  });

  it('flags a SUT whose full core others shared', () => {
    expect(heldBack({ sut: 0.75, harness: 0.7, coreBusy: [1, 0.72] }, pinned)).toBe(
      'SUT starved (others on its core)',
    );
  });

  it('does not take a full core the SUT used itself for starvation', () => {
    expect(heldBack({ sut: 0.95, harness: 0.7, coreBusy: [1, 0.72] }, pinned)).toBeNull();
  });

  it('flags direct, whose SUT shares the load generator core, once that core is full', () => {
    expect(heldBack({ sut: 0.45, harness: 0.55, coreBusy: [0.1, 1] }, { sut: 1, load: 1 })).toBe(
      'load generator saturated',
    );
  });

  it('unpinned, flags only a full load generator or a machine with every core full', () => {
    expect(heldBack({ sut: 0.7, harness: 0.6, coreBusy: [0.95, 0.5] }, null)).toBeNull();
    expect(heldBack({ sut: 0.7, harness: 0.6, coreBusy: [0.95, 0.93] }, null)).toBe('every core saturated');
    expect(heldBack({ sut: 0.7, harness: 0.92, coreBusy: [0.5, 0.5] }, null)).toBe(
      'load generator saturated',
    );
  });
});

describe('throughputVerdict', () => {
  it('is INVALID whenever a side was held back, whatever the value', () => {
    expect(throughputVerdict(0.7, 0.6, ['nginx: load generator saturated'])).toBe('INVALID');
    expect(throughputVerdict(0.2, undefined, ['x'])).toBe('INVALID');
  });

  it('judges a valid ratio against its floor, and leaves one without a floor blank', () => {
    expect(throughputVerdict(0.9, 0.85, [])).toBe('met');
    expect(throughputVerdict(0.8, 0.85, [])).toBe('MISSED');
    expect(throughputVerdict(0.8, undefined, [])).toBe('');
  });
});

describe('multiCoreLayout', () => {
  it('skips a machine with fewer cores than it needs, and says how many it has', () => {
    const r = multiCoreLayout(2);
    expect('skip' in r && r.skip).toMatch(new RegExp(`needs ${MIN_CORES} cores.*has 2`));
  });

  it('gives the proxies, the upstream and the load generator cores of their own', () => {
    for (const cores of [MIN_CORES, 16, 64]) {
      const r = multiCoreLayout(cores);
      if ('skip' in r) throw new Error(r.skip);
      const all = [...r.sut, ...r.upstream, ...r.load];
      expect(new Set(all).size).toBe(all.length);
      expect(Math.max(...all)).toBeLessThan(cores);
      expect(r.sut).toEqual([0, 1, 2, 3]);
      expect(r.upstream.length).toBeGreaterThanOrEqual(1);
      expect(r.load.length).toBeGreaterThanOrEqual(3);
      expect(r.load.length).toBeLessThanOrEqual(8);
    }
  });
});
