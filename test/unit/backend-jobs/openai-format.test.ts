import { describe, expect, it } from 'vitest';
import { openAIErrorBody } from '../../../backend/api/openai-errors.js';
import { ApiError } from '../../../backend/errors.js';
import type { Transcript } from '../../../backend/jobs/format.js';
import { compressionRatio, renderOpenAI } from '../../../backend/jobs/openai-format.js';

const transcript: Transcript = {
  job_id: 'j',
  language: 'de',
  duration: 4.2,
  text: 'Hallo Welt. Noch was.',
  segments: [
    { start: 0, end: 1.5, text: 'Hallo Welt.' },
    { start: 1.5, end: 4.2, text: 'Noch was.' },
  ],
};

describe('renderOpenAI', () => {
  it('json: the text, and the seconds billed', () => {
    expect(JSON.parse(renderOpenAI(transcript, 'json'))).toEqual({
      text: 'Hallo Welt. Noch was.',
      usage: { type: 'duration', seconds: 5 },
    });
  });

  it('text ends with a newline; srt and vtt are the native renderings', () => {
    expect(renderOpenAI(transcript, 'text')).toBe('Hallo Welt. Noch was.\n');
    expect(renderOpenAI(transcript, 'srt')).toBe(
      '1\n00:00:00,000 --> 00:00:01,500\nHallo Welt.\n\n2\n00:00:01,500 --> 00:00:04,200\nNoch was.\n',
    );
    expect(renderOpenAI(transcript, 'vtt')).toBe(
      'WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHallo Welt.\n\n00:00:01.500 --> 00:00:04.200\nNoch was.\n',
    );
  });

  it("verbose_json: OpenAI's fields, the language by name", () => {
    const v = JSON.parse(renderOpenAI(transcript, 'verbose_json'));
    expect(v).toMatchObject({ task: 'transcribe', language: 'german', duration: 4.2, text: transcript.text });
    expect(v.segments[1]).toEqual({
      id: 1,
      seek: 150,
      start: 1.5,
      end: 4.2,
      text: ' Noch was.',
      tokens: [],
      temperature: 0,
      avg_logprob: 0,
      compression_ratio: compressionRatio('Noch was.'),
      no_speech_prob: 0,
    });
    // An unknown code is passed through rather than dropped.
    expect(JSON.parse(renderOpenAI({ ...transcript, language: 'und' }, 'verbose_json')).language).toBe('und');
  });

  it('compression ratio: repetitive text compresses more', () => {
    expect(compressionRatio('')).toBe(0);
    expect(compressionRatio('la '.repeat(100))).toBeGreaterThan(2.4);
    expect(compressionRatio('The quick brown fox')).toBeLessThan(1.5);
  });
});

describe('openAIErrorBody', () => {
  it('has the four fields, the param where the code implies one, and extras beside them', () => {
    expect(openAIErrorBody(new ApiError('no_file', 'No file'))).toEqual({
      error: { message: 'No file', type: 'invalid_request_error', param: 'file', code: 'no_file' },
    });
    expect(openAIErrorBody(new ApiError('bad_request', 'bad', { param: 'temperature' })).error.param).toBe(
      'temperature',
    );
    expect(openAIErrorBody(new ApiError('unavailable', 'down'))).toEqual({
      error: { message: 'down', type: 'server_error', param: null, code: 'unavailable' },
    });
  });

  it('no extra can replace one of the four fields', () => {
    const body = openAIErrorBody(
      new ApiError('job_failed', 'failed', { code: 'x', message: 'y', job_id: 'j' }),
    );
    expect(body.error).toEqual({
      message: 'failed',
      type: 'invalid_request_error',
      param: null,
      code: 'job_failed',
      job_id: 'j',
    });
  });
});
