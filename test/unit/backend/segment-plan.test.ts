import { describe, expect, it } from 'vitest';
import {
  offsetTranscript,
  type PlannedSegment,
  planSegments,
  type Silence,
} from '../../../backend/media/segment-plan.js';

/** Silences of a tone/silence pattern: `tone` s of sound, then `gap` s of silence, repeated. */
function pattern(duration: number, tone = 5, gap = 1): Silence[] {
  const out: Silence[] = [];
  for (let t = tone; t < duration; t += tone + gap) out.push({ start: t, end: Math.min(duration, t + gap) });
  return out;
}

function expectWellFormed(plan: PlannedSegment[], duration: number, maxSec = 40): void {
  expect(plan[0]!.start).toBe(0);
  expect(plan[plan.length - 1]!.end).toBe(duration);
  plan.forEach((s, i) => {
    expect(s.index).toBe(i);
    expect(s.end).toBeGreaterThan(s.start);
    expect(s.end - s.start).toBeLessThanOrEqual(maxSec + 1e-9);
    if (i > 0) expect(s.start).toBe(plan[i - 1]!.end);
  });
}

/** Same generator family as the model fixture: seeded, so a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('planSegments', () => {
  it('returns nothing for no audio', () => {
    expect(planSegments(0, [])).toEqual([]);
    expect(planSegments(-3, [])).toEqual([]);
    expect(planSegments(Number.NaN, [])).toEqual([]);
    expect(planSegments(Number.POSITIVE_INFINITY, [])).toEqual([]);
  });

  it('keeps audio up to the target as one segment', () => {
    expect(planSegments(12.5, pattern(12.5))).toEqual([{ index: 0, start: 0, end: 12.5 }]);
    expect(planSegments(30, pattern(30))).toEqual([{ index: 0, start: 0, end: 30 }]);
  });

  it('cuts at the silence midpoint nearest 30 s', () => {
    // Silences [5,6], [11,12], …: midpoints 5.5, 11.5, 17.5, 23.5, 29.5, 35.5, …
    const plan = planSegments(70, pattern(70));
    expect(plan).toEqual([
      { index: 0, start: 0, end: 29.5 },
      { index: 1, start: 29.5, end: 59.5 },
      { index: 2, start: 59.5, end: 70 },
    ]);
  });

  it('prefers the earlier of two equally near silences', () => {
    const plan = planSegments(60, [
      { start: 24.5, end: 25.5 },
      { start: 34.5, end: 35.5 },
    ]);
    expect(plan[0]!.end).toBe(25);
  });

  it('cuts a long silence at the target itself, keeping away from its edges', () => {
    expect(planSegments(60, [{ start: 20, end: 45 }])[0]!.end).toBe(30);
    // The target lies beyond the silence: the cut stays 1 s inside its far edge.
    expect(planSegments(60, [{ start: 20, end: 26 }])[0]!.end).toBe(25);
  });

  it('hard-cuts at the target when no silence lies in reach', () => {
    const plan = planSegments(95, [{ start: 2, end: 3 }]);
    expect(plan.map((s) => [s.start, s.end])).toEqual([
      [0, 30],
      [30, 60],
      [60, 95],
    ]);
  });

  it('keeps a remainder that fits in maxSec whole rather than cut it without a silence', () => {
    expect(planSegments(38, [])).toEqual([{ index: 0, start: 0, end: 38 }]);
  });

  it('ignores silences too close to the previous cut or to the end', () => {
    // Midpoints at 5 and 45 are within minSec (10) of a boundary of this 50 s file.
    const plan = planSegments(50, [
      { start: 4.5, end: 5.5 },
      { start: 44.5, end: 45.5 },
    ]);
    expect(plan.map((s) => s.end)).toEqual([30, 50]);
  });

  it('never leaves a tail shorter than minSec', () => {
    // A silence at 30 s in a 39 s file would leave a 9 s tail: not taken, and 39 s fits in one.
    expect(planSegments(39, [{ start: 29.5, end: 30.5 }])).toEqual([{ index: 0, start: 0, end: 39 }]);
    // Without silences, 61 s is cut at 30 and the 31 s rest kept whole instead of leaving 1 s.
    expect(planSegments(61, []).map((s) => [s.start, s.end])).toEqual([
      [0, 30],
      [30, 61],
    ]);
  });

  it('clips silences to the audio and tolerates unsorted, overlapping or empty ones', () => {
    const plan = planSegments(65, [
      { start: 50, end: 40 },
      { start: 28.5, end: 29.5 },
      { start: -2, end: 0.5 },
      { start: 64, end: 80 },
      { start: 28.8, end: 29.2 },
    ]);
    expect(plan.map((s) => s.end)).toEqual([29, 65]);
  });

  it('honours targetSec, maxSec and minSec', () => {
    const plan = planSegments(100, pattern(100), { targetSec: 10, maxSec: 15, minSec: 5 });
    expectWellFormed(plan, 100, 15);
    expect(plan[0]!.end).toBe(11.5);
    expect(() => planSegments(100, [], { targetSec: 50, maxSec: 40 })).toThrow(RangeError);
    expect(() => planSegments(100, [], { minSec: 0 })).toThrow(RangeError);
  });

  it('is deterministic: the same input gives the same plan (a resumed job relies on it)', () => {
    const silences = pattern(3600, 7, 0.8);
    expect(planSegments(3600, silences)).toEqual(planSegments(3600, [...silences].reverse()));
  });

  it('plans an hour of speech-like audio into ~30 s segments within bounds', () => {
    const plan = planSegments(3600, pattern(3600, 4.2, 0.6));
    expectWellFormed(plan, 3600);
    for (const s of plan.slice(0, -1)) expect(Math.abs(s.end - s.start - 30)).toBeLessThanOrEqual(3);
    expect(plan.length).toBeGreaterThanOrEqual(115);
    expect(plan.length).toBeLessThanOrEqual(125);
  });

  it('keeps its invariants on random inputs', () => {
    const rand = prng(42);
    for (let run = 0; run < 500; run++) {
      const duration = Math.round(rand() * 600 * 1000) / 1000 + 0.001;
      const silences: Silence[] = [];
      for (let t = rand() * 10; t < duration; t += rand() * 25) {
        silences.push({ start: t, end: t + rand() * 3 });
      }
      const plan = planSegments(duration, silences);
      expectWellFormed(plan, Math.round(duration * 1000) / 1000);
      // Every cut except a hard one lies inside a silence.
      for (const s of plan.slice(0, -1)) {
        const inSilence = silences.some((q) => q.start - 1e-3 <= s.end && s.end <= q.end + 1e-3);
        const hard = Math.abs(s.end - s.start - 30) < 1e-6;
        expect(inSilence || hard).toBe(true);
      }
    }
  });
});

describe('offsetTranscript', () => {
  it('moves segment-relative times onto the file timeline', () => {
    const out = offsetTranscript({ start: 29.5, end: 59.5 }, [
      { start: 0, end: 4.2, text: ' a' },
      { start: 4.2, end: 10, text: ' b' },
    ]);
    expect(out).toEqual([
      { start: 29.5, end: 33.7, text: ' a' },
      { start: 33.7, end: 39.5, text: ' b' },
    ]);
  });

  it('clamps times whisper places past the end of the segment', () => {
    const out = offsetTranscript({ start: 60, end: 70 }, [
      { start: 8, end: 30, text: ' x' },
      { start: 31, end: 32, text: ' y' },
    ]);
    expect(out).toEqual([
      { start: 68, end: 70, text: ' x' },
      { start: 70, end: 70, text: ' y' },
    ]);
  });
});
