import { describe, expect, it } from 'vitest';
import { parseSilenceDetect } from '../../../backend/media/ffmpeg.js';

describe('parseSilenceDetect', () => {
  it('pairs silence_start and silence_end lines as ffmpeg 5 prints them', () => {
    const lines = [
      'Input #0, wav, from /tmp/a.wav:',
      '[silencedetect @ 0x5576cd2fed40] silence_start: 5',
      '[silencedetect @ 0x5576cd2fed40] silence_end: 6.00006 | silence_duration: 1.00006',
      'size=N/A time=00:00:10.00 bitrate=N/A speed= 500x',
      '[silencedetect @ 0x5576cd2fed40] silence_start: 11',
      '[silencedetect @ 0x5576cd2fed40] silence_end: 12.0001 | silence_duration: 1.00006',
    ];
    expect(parseSilenceDetect(lines)).toEqual([
      { start: 5, end: 6.00006 },
      { start: 11, end: 12.0001 },
    ]);
  });

  it('clamps the negative start silencedetect reports for silence at the very beginning', () => {
    const lines = [
      '[silencedetect @ 0x1] silence_start: -0.0200625',
      '[silencedetect @ 0x1] silence_end: 1.5 | x',
    ];
    expect(parseSilenceDetect(lines)).toEqual([{ start: 0, end: 1.5 }]);
  });

  it('closes a trailing silence at the duration when ffmpeg does not, and drops it without one', () => {
    const lines = ['[silencedetect @ 0x1] silence_start: 17.25'];
    expect(parseSilenceDetect(lines, 18)).toEqual([{ start: 17.25, end: 18 }]);
    expect(parseSilenceDetect(lines)).toEqual([]);
  });

  it('ignores unmatched ends, garbage numbers and empty silences', () => {
    const lines = [
      '[silencedetect @ 0x1] silence_end: 3 | silence_duration: 1',
      '[silencedetect @ 0x1] silence_start: 4',
      '[silencedetect @ 0x1] silence_end: 4 | silence_duration: 0',
      '[silencedetect @ 0x1] silence_start: 1e1',
      '[silencedetect @ 0x1] silence_end: 1.1e1 | silence_duration: 1',
    ];
    expect(parseSilenceDetect(lines)).toEqual([{ start: 10, end: 11 }]);
  });
});
