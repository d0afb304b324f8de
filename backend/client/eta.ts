// The progress bar's ETA. Progress by stage says little about time: upload, normalize and validate
// take seconds, transcription takes nearly all of it, so extrapolating the progress fraction starts
// at a few seconds and only grows. The ETA here is the audio still to transcribe divided by the
// speed measured on this very job: the backend's own figure (GET /status's audio_duration and
// transcribe_speed) when it reports one, else segments per second as seen from the client. Between
// two segments it counts down from the estimate made when the last one finished.
import type { JobStatus } from '../jobs/job-store.js';

/** The status fields the estimate reads; the two measured ones are absent on older backends. */
export type EtaInput = Pick<JobStatus, 'state' | 'stage' | 'segments_done' | 'segments_total'> &
  Partial<Pick<JobStatus, 'audio_duration' | 'transcribe_speed'>>;

/** Never shown below this while the job still runs: "0 s" for a job not done reads as a hang. */
const FLOOR_MS = 1_000;

export class EtaEstimator {
  /** The estimate made when segments_done last changed, and when. */
  private anchor: { done: number; at: number; etaMs: number | null } | null = null;
  /** The first transcribe status seen: where the client's own speed measure starts. */
  private first: { done: number; at: number } | null = null;

  constructor(private readonly now: () => number = Date.now) {}

  /** Milliseconds left, or null while nothing says yet (before transcription's first segment). */
  observe(s: EtaInput): number | null {
    if (s.state === 'completed') return 0;
    if (s.state !== 'running' || s.segments_total <= 0) return null;
    if (s.stage === 'format' || s.stage === 'done') return 0;
    if (s.stage !== 'transcribe') return null;
    const now = this.now();
    const done = s.segments_done;
    if (this.first === null || done < this.first.done) this.first = { done, at: now };
    if (this.anchor === null || this.anchor.done !== done) {
      this.anchor = { done, at: now, etaMs: this.fresh(s, now) };
    }
    const { etaMs, at } = this.anchor;
    if (etaMs === null) return null;
    if (done >= s.segments_total) return 0;
    return Math.max(FLOOR_MS, etaMs - (now - at));
  }

  /** The estimate as of a segment just finished. */
  private fresh(s: EtaInput, now: number): number | null {
    const left = s.segments_total - s.segments_done;
    if (left <= 0) return 0;
    const duration = s.audio_duration ?? null;
    const speed = s.transcribe_speed ?? null;
    if (duration !== null && duration > 0 && speed !== null && speed > 0) {
      // Segments are about equal in length (cut near 30 s), so audio left is in proportion.
      return ((duration * left) / s.segments_total / speed) * 1000;
    }
    const first = this.first!;
    const measured = s.segments_done - first.done;
    const elapsed = now - first.at;
    if (measured <= 0 || elapsed <= 0) return null;
    return (left * elapsed) / measured;
  }
}
