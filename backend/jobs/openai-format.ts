// A stored transcript in the response formats of OpenAI's POST /v1/audio/transcriptions: pure
// functions, like format.ts, so any finished job can be answered in any of them.
//
// verbose_json holds what whisper.cpp gives (segment times and text, the language) and, for the
// fields its JSON output does not carry, values that mislead no client: `tokens` is empty,
// `avg_logprob` and `no_speech_prob` are 0, `temperature` is 0 (decoding starts at 0 and this
// whisper.cpp cannot be told otherwise), and `seek` is the segment's start in 10 ms frames.
// `compression_ratio` is computed from the text, as OpenAI's is (text bytes over their zlib size).
import { deflateSync } from 'node:zlib';
import { WHISPER_LANGUAGE_NAMES } from '../media/whisper.js';
import { renderSrt, renderVtt, type Transcript } from './format.js';

export const OPENAI_RESPONSE_FORMATS = ['json', 'text', 'srt', 'vtt', 'verbose_json'] as const;
export type OpenAIResponseFormat = (typeof OPENAI_RESPONSE_FORMATS)[number];

export function isOpenAIResponseFormat(value: unknown): value is OpenAIResponseFormat {
  return typeof value === 'string' && (OPENAI_RESPONSE_FORMATS as readonly string[]).includes(value);
}

/** OpenAI's content types: JSON for the two JSON formats, plain text for the rest. */
export const OPENAI_CONTENT_TYPE: Record<OpenAIResponseFormat, string> = {
  json: 'application/json; charset=utf-8',
  verbose_json: 'application/json; charset=utf-8',
  text: 'text/plain; charset=utf-8',
  srt: 'text/plain; charset=utf-8',
  vtt: 'text/plain; charset=utf-8',
};

export interface OpenAISegment {
  id: number;
  seek: number;
  start: number;
  end: number;
  text: string;
  tokens: number[];
  temperature: number;
  avg_logprob: number;
  compression_ratio: number;
  no_speech_prob: number;
}

/** OpenAI bills whisper-1 by the second, and says so in `usage`; here it is the audio's length. */
function usage(t: Transcript) {
  return { type: 'duration' as const, seconds: Math.ceil(t.duration) };
}

export function renderOpenAI(t: Transcript, format: OpenAIResponseFormat): string {
  switch (format) {
    case 'json':
      return JSON.stringify({ text: t.text, usage: usage(t) });
    case 'text':
      return `${t.text}\n`;
    case 'srt':
      return renderSrt(t.segments);
    case 'vtt':
      return renderVtt(t.segments);
    case 'verbose_json':
      return JSON.stringify({
        task: 'transcribe',
        language: WHISPER_LANGUAGE_NAMES.get(t.language) ?? t.language,
        duration: t.duration,
        text: t.text,
        segments: t.segments.map(
          (s, id): OpenAISegment => ({
            id,
            seek: Math.round(s.start * 100),
            start: s.start,
            end: s.end,
            // OpenAI's segment texts keep the space that starts each one.
            text: ` ${s.text}`,
            tokens: [],
            temperature: 0,
            avg_logprob: 0,
            compression_ratio: compressionRatio(s.text),
            no_speech_prob: 0,
          }),
        ),
        usage: usage(t),
      });
  }
}

/** Bytes of the text over bytes of its zlib compression; 0 for no text. */
export function compressionRatio(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length === 0) return 0;
  return Math.round((bytes.length / deflateSync(bytes).length) * 1e6) / 1e6;
}
