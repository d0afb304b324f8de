// The progress a job reports after each stage, in one place: status, checkpoints and the pipeline
// all read them from here.

export type Stage = 'upload' | 'normalize' | 'validate' | 'transcribe' | 'format' | 'done';

/** Progress once a stage is complete. */
export const STAGE_DONE_PROGRESS = {
  upload: 0.1,
  normalize: 0.25,
  validate: 0.35,
  transcribe: 0.85,
  format: 1,
  done: 1,
} as const satisfies Record<Stage, number>;

const TRANSCRIBE_FROM = STAGE_DONE_PROGRESS.validate;
const TRANSCRIBE_TO = STAGE_DONE_PROGRESS.transcribe;

/** Progress during transcription: 0.35 → 0.85 in proportion to segments done. */
export function transcribeProgress(done: number, total: number): number {
  if (total <= 0) return TRANSCRIBE_TO;
  const ratio = Math.min(1, Math.max(0, done / total));
  // Rounded so the status never shows 0.35000000000000003.
  return Math.round((TRANSCRIBE_FROM + (TRANSCRIBE_TO - TRANSCRIBE_FROM) * ratio) * 10_000) / 10_000;
}

const ORDER: readonly Stage[] = ['upload', 'normalize', 'validate', 'transcribe', 'format', 'done'];

/** True when stage `a` comes at or after stage `b` in the pipeline. */
export function stageAtLeast(a: string, b: Stage): boolean {
  const i = ORDER.indexOf(a as Stage);
  return i >= 0 && i >= ORDER.indexOf(b);
}
