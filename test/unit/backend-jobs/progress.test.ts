import { describe, expect, it } from 'vitest';
import { STAGE_DONE_PROGRESS, stageAtLeast, transcribeProgress } from '../../../backend/jobs/progress.js';

describe('progress weights', () => {
  it('has the documented weight per completed stage', () => {
    expect(STAGE_DONE_PROGRESS).toMatchObject({ upload: 0.1, normalize: 0.25, validate: 0.35, format: 1 });
  });

  it('moves from 0.35 to 0.85 in proportion to segments', () => {
    expect(transcribeProgress(0, 33)).toBe(0.35);
    expect(transcribeProgress(33, 33)).toBe(0.85);
    expect(transcribeProgress(15, 33)).toBe(0.5773);
    expect(transcribeProgress(1, 2)).toBe(0.6);
  });

  it('stays within bounds for odd inputs', () => {
    expect(transcribeProgress(5, 0)).toBe(0.85);
    expect(transcribeProgress(-1, 10)).toBe(0.35);
    expect(transcribeProgress(20, 10)).toBe(0.85);
  });

  it('orders stages', () => {
    expect(stageAtLeast('transcribe', 'normalize')).toBe(true);
    expect(stageAtLeast('normalize', 'normalize')).toBe(true);
    expect(stageAtLeast('normalize', 'validate')).toBe(false);
    expect(stageAtLeast('bogus', 'upload')).toBe(false);
  });
});
