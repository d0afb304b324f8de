// Where to cut a recording into ~30 s pieces for whisper.cpp, and how to put the pieces' timestamps
// back on the file's timeline. Pure functions: a resumed job must re-plan exactly the same cuts.

export interface Silence {
  /** Seconds from the start of the file. */
  start: number;
  end: number;
}

export interface PlannedSegment {
  index: number;
  /** Seconds from the start of the file; segments are contiguous and cover [0, duration]. */
  start: number;
  end: number;
}

export interface PlanOptions {
  /** The length to aim for; whisper's encoder window is 30 s. */
  targetSec?: number;
  /** No segment is longer than this. */
  maxSec?: number;
  /** No cut is made closer than this to the previous cut or to the end of the file. */
  minSec?: number;
}

/** How far inside a silence a cut keeps from its edges, which silencedetect places only roughly. */
const EDGE_PAD_SEC = 1;

/**
 * Chooses cut points about `targetSec` apart, each inside a silence when one lies within
 * [minSec, maxSec] of the previous cut (the point of the silence nearest the target, at least 1 s
 * from its edges when it is long enough — its midpoint when it is short), and otherwise a hard
 * cut at the target. The tail is never shorter than minSec, so a file is not left with a
 * one-second scrap that costs a full encoder pass and transcribes badly.
 */
export function planSegments(
  durationSec: number,
  silences: readonly Silence[],
  { targetSec = 30, maxSec = 40, minSec = 10 }: PlanOptions = {},
): PlannedSegment[] {
  if (!(durationSec > 0) || !Number.isFinite(durationSec)) return [];
  if (!(minSec > 0 && minSec <= targetSec && targetSec <= maxSec)) {
    throw new RangeError(
      `planSegments needs 0 < minSec ≤ targetSec ≤ maxSec (got ${minSec}, ${targetSec}, ${maxSec})`,
    );
  }
  const duration = round3(durationSec);
  const quiet = silences
    .map((s) => ({ start: Math.max(0, s.start), end: Math.min(duration, s.end) }))
    .filter((s) => s.end > s.start)
    .sort((a, b) => a.start - b.start);

  const segments: PlannedSegment[] = [];
  let start = 0;
  while (duration - start > targetSec) {
    const lo = start + minSec;
    const hi = Math.min(start + maxSec, duration - minSec);
    let cut: number;
    if (lo > hi) {
      // Too short for two segments of minSec, but longer than targetSec. maxSec ≥ 2·minSec makes
      // that fit in one; otherwise halve it, as no allowed cut exists.
      if (duration - start <= maxSec) break;
      cut = start + (duration - start) / 2;
    } else {
      const aim = start + targetSec;
      const best = bestSilencePoint(quiet, lo, hi, aim);
      // No silence to cut at: a remainder that fits in one segment stays whole rather than be
      // cut mid-word; a longer one gets a hard cut at the target.
      if (best === undefined && duration - start <= maxSec) break;
      cut = best ?? clamp(aim, lo, hi);
    }
    cut = round3(cut);
    if (cut <= start) break; // rounding guard: never emit an empty segment
    segments.push({ index: segments.length, start, end: cut });
    start = cut;
  }
  segments.push({ index: segments.length, start, end: duration });
  return segments;
}

/** The cut point within [lo, hi] nearest `aim` that lies inside a silence; ties go to the earlier. */
function bestSilencePoint(
  quiet: readonly Silence[],
  lo: number,
  hi: number,
  aim: number,
): number | undefined {
  let best: number | undefined;
  for (const s of quiet) {
    if (s.end < lo) continue;
    if (s.start > hi) break;
    const pad = Math.min(EDGE_PAD_SEC, (s.end - s.start) / 2);
    const point = clamp(aim, s.start + pad, s.end - pad);
    if (point < lo || point > hi) continue;
    if (best === undefined || Math.abs(point - aim) < Math.abs(best - aim)) best = point;
  }
  return best;
}

export interface TimedText {
  start: number;
  end: number;
  text: string;
}

/**
 * Moves a segment's transcript (times relative to the segment file) onto the file's timeline,
 * clamped to the segment: whisper may place an end past the audio it was given, and clamping
 * keeps the whole transcript monotonic across segments.
 */
export function offsetTranscript(
  segment: { start: number; end: number },
  items: readonly TimedText[],
): TimedText[] {
  return items.map((item) => {
    const start = clamp(round3(segment.start + item.start), segment.start, segment.end);
    const end = clamp(round3(segment.start + item.end), start, segment.end);
    return { start, end, text: item.text };
  });
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
