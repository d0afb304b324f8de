// Transcript formatters: json, txt, srt and vtt. Pure functions of the stored transcript, so a
// result can be rendered in any format at any time without re-running the job.

export interface TranscriptSegment {
  /** Seconds from the start of the file. */
  start: number;
  end: number;
  text: string;
}

export interface Transcript {
  job_id: string;
  language: string;
  /** Seconds. */
  duration: number;
  text: string;
  segments: TranscriptSegment[];
}

export const RESULT_FORMATS = ['json', 'txt', 'srt', 'vtt'] as const;
export type ResultFormat = (typeof RESULT_FORMATS)[number];

export function isResultFormat(value: unknown): value is ResultFormat {
  return typeof value === 'string' && (RESULT_FORMATS as readonly string[]).includes(value);
}

export const CONTENT_TYPE: Record<ResultFormat, string> = {
  json: 'application/json; charset=utf-8',
  txt: 'text/plain; charset=utf-8',
  srt: 'application/x-subrip; charset=utf-8',
  vtt: 'text/vtt; charset=utf-8',
};

/** The full text: segment texts, trimmed, joined by single spaces. */
export function joinText(segments: readonly TranscriptSegment[]): string {
  return segments
    .map((s) => s.text.trim())
    .filter((t) => t.length > 0)
    .join(' ');
}

export function render(transcript: Transcript, format: ResultFormat): string {
  switch (format) {
    case 'json':
      return JSON.stringify(transcript);
    case 'txt':
      return renderTxt(transcript.segments);
    case 'srt':
      return renderSrt(transcript.segments);
    case 'vtt':
      return renderVtt(transcript.segments);
  }
}

/** One line per segment, as whisper.cpp's own -otxt writes it. */
export function renderTxt(segments: readonly TranscriptSegment[]): string {
  const lines = cues(segments).map((c) => c.text.replace(/\n/g, ' '));
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

export function renderSrt(segments: readonly TranscriptSegment[]): string {
  return cues(segments)
    .map((c, i) => `${i + 1}\n${timestamp(c.start, ',')} --> ${timestamp(c.end, ',')}\n${c.text}\n`)
    .join('\n');
}

export function renderVtt(segments: readonly TranscriptSegment[]): string {
  const body = cues(segments)
    // "-->" inside cue text would end the cue early in a VTT parser.
    .map((c) => `${timestamp(c.start, '.')} --> ${timestamp(c.end, '.')}\n${c.text.replace(/-->/g, '->')}\n`)
    .join('\n');
  return body.length === 0 ? 'WEBVTT\n' : `WEBVTT\n\n${body}`;
}

/**
 * HH:MM:SS<sep>mmm from seconds. Works in whole milliseconds so rounding carries into seconds,
 * minutes and hours (59.9996 s → 00:01:00,000, never 00:00:59,1000).
 */
export function timestamp(seconds: number, sep: ',' | '.'): string {
  const total = Number.isFinite(seconds) && seconds > 0 ? Math.round(seconds * 1000) : 0;
  const ms = total % 1000;
  const s = Math.floor(total / 1000) % 60;
  const m = Math.floor(total / 60_000) % 60;
  const h = Math.floor(total / 3_600_000);
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}${sep}${pad(ms, 3)}`;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Segments with text, blank lines squeezed (a blank line ends an SRT/VTT cue), end ≥ start. */
function cues(segments: readonly TranscriptSegment[]): TranscriptSegment[] {
  const out: TranscriptSegment[] = [];
  for (const s of segments) {
    const text = s.text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l.length > 0)
      .join('\n');
    if (text.length === 0) continue;
    out.push({ start: s.start, end: Math.max(s.start, s.end), text });
  }
  return out;
}
