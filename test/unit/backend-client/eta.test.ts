// The progress bar's ETA as a pure function of the statuses it sees and an injected clock: nothing
// until transcription has measured a speed, then audio left over speed, counting down between
// segments, and the client's own segments-per-second when the backend reports no speed.
import { describe, expect, it } from 'vitest';
import { EtaEstimator, type EtaInput } from '../../../backend/client/eta.js';
import { ManualClock } from '../../../core/clock.js';

function setup() {
  const clock = new ManualClock();
  const eta = new EtaEstimator(() => clock.now());
  return { clock, eta };
}

const running = (done: number, total: number, more: Partial<EtaInput> = {}): EtaInput => ({
  state: 'running',
  stage: 'transcribe',
  segments_done: done,
  segments_total: total,
  ...more,
});

describe('EtaEstimator', () => {
  it('says nothing before transcription has finished a segment', () => {
    const { eta } = setup();
    expect(eta.observe({ state: 'queued', stage: 'upload', segments_done: 0, segments_total: 0 })).toBeNull();
    expect(
      eta.observe({ state: 'running', stage: 'normalize', segments_done: 0, segments_total: 0 }),
    ).toBeNull();
    expect(
      eta.observe({ state: 'running', stage: 'validate', segments_done: 0, segments_total: 0 }),
    ).toBeNull();
    expect(eta.observe(running(0, 20, { audio_duration: 600, transcribe_speed: null }))).toBeNull();
  });

  it('divides the audio left by the speed the backend measured, and counts down between segments', () => {
    const { clock, eta } = setup();
    // 600 s of audio in 20 segments, 5 done at twice real time: 450 s of audio left, 225 s.
    expect(eta.observe(running(5, 20, { audio_duration: 600, transcribe_speed: 2 }))).toBe(225_000);
    clock.advance(10_000);
    expect(eta.observe(running(5, 20, { audio_duration: 600, transcribe_speed: 2 }))).toBe(215_000);
    // A segment later the estimate is made afresh, with the speed as measured now.
    expect(eta.observe(running(6, 20, { audio_duration: 600, transcribe_speed: 2.5 }))).toBe(168_000);
    // A segment slower than estimated holds at a second rather than showing 0 for a running job.
    clock.advance(500_000);
    expect(eta.observe(running(6, 20, { audio_duration: 600, transcribe_speed: 2.5 }))).toBe(1_000);
  });

  it('measures segments per second itself when the backend reports no speed', () => {
    const { clock, eta } = setup();
    expect(eta.observe(running(2, 20))).toBeNull();
    clock.advance(30_000);
    // 2 segments in 30 s, 16 left: 240 s.
    expect(eta.observe(running(4, 20))).toBe(240_000);
    clock.advance(40_000);
    expect(eta.observe(running(4, 20))).toBe(200_000);
  });

  it('is 0 once transcription is over', () => {
    const { eta } = setup();
    expect(eta.observe(running(20, 20, { audio_duration: 600, transcribe_speed: 2 }))).toBe(0);
    expect(eta.observe({ state: 'running', stage: 'format', segments_done: 20, segments_total: 20 })).toBe(0);
    expect(eta.observe({ state: 'completed', stage: 'done', segments_done: 20, segments_total: 20 })).toBe(0);
  });

  it('over a steady job, starts near the truth and only goes down', () => {
    // 20 segments of 30 s, each transcribed in 15 s (speed 2), polled every 5 s after 20 s of
    // upload, normalize and validate: the old estimate, from the progress fraction, began at a
    // few seconds here and then grew.
    const { clock, eta } = setup();
    const total = 20;
    const segmentMs = 15_000;
    clock.advance(20_000);
    const start = clock.now();
    const shown: { at: number; etaMs: number }[] = [];
    for (let t = 0; t <= total * segmentMs; t += 5_000) {
      clock.set(start + t);
      const done = Math.min(total, Math.floor(t / segmentMs));
      const s = running(done, total, { audio_duration: 600, transcribe_speed: done > 0 ? 2 : null });
      const ms = eta.observe(s);
      if (ms !== null) shown.push({ at: t, etaMs: ms });
    }
    // The first estimate comes with the first segment, and is the truth: 19 segments of 15 s.
    expect(shown[0]).toEqual({ at: segmentMs, etaMs: 19 * segmentMs });
    for (let i = 1; i < shown.length; i++) {
      expect(shown[i]!.etaMs).toBeLessThanOrEqual(shown[i - 1]!.etaMs);
      const truth = total * segmentMs - shown[i]!.at;
      expect(Math.abs(shown[i]!.etaMs - truth)).toBeLessThanOrEqual(1_000);
    }
  });
});
