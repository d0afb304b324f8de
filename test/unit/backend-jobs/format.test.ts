import { describe, expect, it } from 'vitest';
import {
  isResultFormat,
  joinText,
  render,
  renderSrt,
  renderTxt,
  renderVtt,
  type Transcript,
  timestamp,
} from '../../../backend/jobs/format.js';

const segments = [
  { start: 0, end: 2.5, text: ' Hello there. ' },
  { start: 2.5, end: 61.0004, text: 'A minute\n\nlater' },
  { start: 3725.25, end: 3727.9996, text: 'an hour on' },
];

describe('timestamp', () => {
  it('formats hours, minutes, seconds and milliseconds exactly', () => {
    expect(timestamp(0, ',')).toBe('00:00:00,000');
    expect(timestamp(1.5, ',')).toBe('00:00:01,500');
    expect(timestamp(61.001, '.')).toBe('00:01:01.001');
    expect(timestamp(3725.25, ',')).toBe('01:02:05,250');
    expect(timestamp(360_000, '.')).toBe('100:00:00.000');
  });

  it('carries rounding into the next second instead of printing 1000 ms', () => {
    expect(timestamp(59.9996, ',')).toBe('00:01:00,000');
    expect(timestamp(0.0004, ',')).toBe('00:00:00,000');
  });

  it('clamps negative and non-finite times to zero', () => {
    expect(timestamp(-1, ',')).toBe('00:00:00,000');
    expect(timestamp(Number.NaN, '.')).toBe('00:00:00.000');
  });
});

describe('formatters', () => {
  it('srt numbers cues from 1 with comma milliseconds and squeezes blank lines', () => {
    expect(renderSrt(segments)).toBe(
      '1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n' +
        '2\n00:00:02,500 --> 00:01:01,000\nA minute\nlater\n\n' +
        '3\n01:02:05,250 --> 01:02:08,000\nan hour on\n',
    );
  });

  it('vtt starts with the header and uses dot milliseconds', () => {
    expect(renderVtt(segments)).toBe(
      'WEBVTT\n\n' +
        '00:00:00.000 --> 00:00:02.500\nHello there.\n\n' +
        '00:00:02.500 --> 00:01:01.000\nA minute\nlater\n\n' +
        '01:02:05.250 --> 01:02:08.000\nan hour on\n',
    );
  });

  it('vtt keeps "-->" out of cue text', () => {
    expect(renderVtt([{ start: 0, end: 1, text: 'a --> b' }])).toContain('\na -> b\n');
  });

  it('txt has one line per segment', () => {
    expect(renderTxt(segments)).toBe('Hello there.\nA minute later\nan hour on\n');
  });

  it('skips empty segments and never lets a cue end before it starts', () => {
    const odd = [
      { start: 1, end: 2, text: '   ' },
      { start: 5, end: 4, text: 'x' },
    ];
    expect(renderSrt(odd)).toBe('1\n00:00:05,000 --> 00:00:05,000\nx\n');
    expect(renderTxt([])).toBe('');
    expect(renderVtt([])).toBe('WEBVTT\n');
  });

  it('json is the transcript itself', () => {
    const t: Transcript = { job_id: 'j', language: 'en', duration: 3728, text: joinText(segments), segments };
    expect(JSON.parse(render(t, 'json'))).toEqual(t);
    expect(t.text).toBe('Hello there. A minute\n\nlater an hour on');
  });

  it('knows its formats', () => {
    expect(['json', 'txt', 'srt', 'vtt'].every(isResultFormat)).toBe(true);
    expect(isResultFormat('pdf')).toBe(false);
    expect(isResultFormat(undefined)).toBe(false);
  });
});
