// The audio steps of the pipeline, on ffmpeg and ffprobe: normalize to the WAV whisper.cpp reads,
// probe the duration (the validate step), find silences, cut segments.
//
// Both tools run through core/process.ts's runProcess, as whisper.cpp does: an argument array and
// no shell (so file names reach them verbatim, whatever they contain), a time budget, an
// AbortSignal, a kill of the whole process group, and the tail of stderr kept for the log.
//
// Every file reaches ffmpeg and ffprobe through restrictedInput(), which confines the read to that
// one file. The messages of invalid_audio errors reach clients, so they are our own words: what
// the tool said (paths included) stays in stderrTail, for the log.
import { rename, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isProcessError, type RunOptions, runProcess } from '../../core/process.js';
import { isMediaError, MediaError, mediaErrorFrom } from './errors.js';
import type { Silence } from './segment-plan.js';

/** The ffmpeg and ffprobe to run: a command found on PATH, or a path (FFMPEG_PATH, FFPROBE_PATH). */
export interface MediaToolPaths {
  readonly ffmpeg: string;
  readonly ffprobe: string;
}

export const DEFAULT_MEDIA_TOOLS: MediaToolPaths = Object.freeze({ ffmpeg: 'ffmpeg', ffprobe: 'ffprobe' });

export interface FfmpegRunOptions {
  signal?: AbortSignal;
  /** Kill ffmpeg and fail with `timeout` after this long; default 10 minutes. */
  timeoutMs?: number;
  /** Default: ffmpeg and ffprobe on PATH. */
  tools?: MediaToolPaths;
}

export const SAMPLE_RATE = 16_000;
const DEFAULT_TIMEOUT_MS = 10 * 60_000;
/** ffprobe reads headers and a little data; a minute means it is stuck. */
const PROBE_TIMEOUT_MS = 60_000;
// No banner and no progress lines: stderr then holds only what explains a failure (or is parsed).
const QUIET = ['-hide_banner', '-nostats'];

/**
 * The demuxers an input may be read with: containers of audio (or video with audio) that hold
 * their media themselves. Left out on purpose are those that open further files named inside the
 * input — hls (an .m3u8 playlist), concat/ffconcat lists, image2 sequences, dash, and the like —
 * since an upload would make ffmpeg read server-local files for it. mov follows external
 * references only with enable_drefs, which is off by default and stays off.
 */
const ALLOWED_DEMUXERS = [
  'aac',
  'aiff',
  'amr',
  'asf',
  'au',
  'avi',
  'caf',
  'flac',
  'matroska',
  'mov',
  'mp3',
  'mpeg',
  'mpegts',
  'ogg',
  'w64',
  'wav',
  'wv',
] as const;

/**
 * The one way a file is handed to ffmpeg or ffprobe: by an absolute `file:` URL, so no name is
 * mistaken for another protocol, read through the file protocol alone (no http, pipe, data, or
 * subfile), by an allowed demuxer alone. The lists are enforced by ffmpeg itself, for the input
 * and for anything a demuxer would open on its behalf.
 */
function restrictedInput(file: string): { url: string; options: string[] } {
  return {
    url: `file:${resolve(file)}`,
    options: ['-protocol_whitelist', 'file', '-format_whitelist', ALLOWED_DEMUXERS.join(',')],
  };
}

/** ffmpeg's arguments up to and including the one input, `file`, read under restrictedInput(). */
function ffmpegReading(file: string, extraInputOptions: string[] = []): string[] {
  const { url, options } = restrictedInput(file);
  return [...QUIET, ...options, ...extraInputOptions, '-i', url];
}

/**
 * Converts any audio (or video with audio) ffmpeg decodes into 16 kHz mono s16 PCM WAV, the input
 * whisper.cpp expects. Undecodable input, or input without an audio stream, fails with
 * `invalid_audio`. The output appears only when complete, so a crash never leaves a partial file
 * that a resumed job would trust. With `maxDurationSec`, decoding stops a second past it.
 */
export async function normalize(
  input: string,
  outWav: string,
  options: FfmpegRunOptions & { maxDurationSec?: number } = {},
): Promise<void> {
  // Past the limit, one more second is enough to tell that the input is too long.
  const cap = options.maxDurationSec === undefined ? [] : ['-t', String(options.maxDurationSec + 1)];
  const args = [
    ...ffmpegReading(input),
    // The first audio stream only (cover art is a stream too); tags dropped, as nothing reads them.
    ...['-map', '0:a:0', '-map_metadata', '-1', '-sn', '-dn', ...cap, '-vn'],
  ];
  try {
    await writeWav(args, outWav, options);
  } catch (err) {
    if (!isMediaError(err, 'process_failed')) throw err;
    // ffmpeg's exit code cannot tell bad input from, say, a full disk; asking ffprobe about the
    // input can. If it finds no decodable audio, the input is to blame.
    const verdict = await probeDuration(input, { tools: options.tools }).then(
      () => null,
      (probeError: unknown) => probeError,
    );
    if (isMediaError(verdict, 'invalid_audio')) {
      throw new MediaError('invalid_audio', 'not decodable audio', {
        command: 'ffmpeg',
        stderrTail: err.stderrTail,
        cause: err,
      });
    }
    throw err;
  }
}

export interface ProbeOptions {
  /** Kills ffprobe, as it does ffmpeg. */
  signal?: AbortSignal;
  /** Default: ffprobe on PATH. */
  tools?: MediaToolPaths;
  /** Longer audio is `invalid_audio` too. */
  maxDurationSec?: number;
  /**
   * Shorter audio is `invalid_audio` too; default: only zero. An MP3 cut after its first frame
   * decodes to a few milliseconds, which whisper.cpp accepts and transcribes as nothing.
   */
  minDurationSec?: number;
}

/**
 * The duration in seconds of a file's audio. Empty files, files ffprobe cannot read, files without
 * an audio stream and zero-length audio fail with `invalid_audio`. Probe the normalized WAV, not
 * the upload: a truncated MP3's header still claims the full length, the WAV's data size cannot.
 */
export async function probeDuration(
  file: string,
  { maxDurationSec, minDurationSec, signal, tools = DEFAULT_MEDIA_TOOLS }: ProbeOptions = {},
): Promise<number> {
  throwIfAborted(signal, 'ffprobe');
  const { size } = await stat(file);
  if (size === 0) throw new MediaError('invalid_audio', 'empty file');

  const { url, options } = restrictedInput(file);
  const args = ['-v', 'error', ...options, '-print_format', 'json', '-show_format', '-show_streams', url];
  let data: ProbeData;
  try {
    const { stdout } = await runProcess(tools.ffprobe, args, { signal, timeoutMs: PROBE_TIMEOUT_MS });
    data = JSON.parse(stdout) as ProbeData;
  } catch (err) {
    if (!isProcessError(err)) {
      // ffprobe exited 0 with output that is not its JSON: nothing we can read as audio.
      throw new MediaError('invalid_audio', 'not decodable audio', { command: 'ffprobe', cause: err });
    }
    // A non-zero exit is ffprobe refusing the input; the rest (missing tool, timeout, abort) keep their code.
    if (err.code !== 'process_failed') throw mediaErrorFrom(err);
    throw new MediaError('invalid_audio', 'not decodable audio', {
      command: 'ffprobe',
      stderrTail: err.stderrTail,
      exitCode: err.exitCode,
      signal: err.signal,
      cause: err,
    });
  }

  const audio = (data.streams ?? []).filter((s) => s.codec_type === 'audio');
  if (audio.length === 0) throw new MediaError('invalid_audio', 'no audio stream');
  const candidates = [data.format?.duration, ...audio.map((s) => s.duration)].map(Number);
  const duration = candidates.find((d) => Number.isFinite(d) && d > 0);
  if (duration === undefined) throw new MediaError('invalid_audio', 'audio has no duration');
  if (minDurationSec !== undefined && duration < minDurationSec) {
    throw new MediaError(
      'invalid_audio',
      `audio is ${duration.toFixed(3)} s long; the minimum is ${minDurationSec} s`,
    );
  }
  if (maxDurationSec !== undefined && duration > maxDurationSec) {
    throw new MediaError(
      'invalid_audio',
      `audio is ${duration.toFixed(1)} s long; the limit is ${maxDurationSec} s`,
    );
  }
  return duration;
}

/** The part of `ffprobe -print_format json -show_format -show_streams` read here. */
interface ProbeData {
  streams?: { codec_type?: string; duration?: string }[];
  format?: { duration?: string };
}

export interface SilenceOptions extends FfmpegRunOptions {
  /** Quieter than this counts as silence. */
  noiseDb?: number;
  /** Shorter quiet stretches do not count. */
  minSilenceSec?: number;
  /** Closes a silence still open at the end, for ffmpeg versions that do not report its end. */
  durationSec?: number;
}

/** The silences in a file, by ffmpeg's silencedetect filter, in order. */
export async function detectSilences(wav: string, options: SilenceOptions = {}): Promise<Silence[]> {
  const { noiseDb = -35, minSilenceSec = 0.3, durationSec } = options;
  const lines: string[] = [];
  const args = [
    ...ffmpegReading(wav),
    ...['-filter:a', `silencedetect=noise=${noiseDb}dB:d=${minSilenceSec}`, '-f', 'null', '-'],
  ];
  await runFfmpeg(args, options, (line) => {
    if (line.includes('silence_')) lines.push(line);
  });
  return parseSilenceDetect(lines, durationSec);
}

const SILENCE_START = /silence_start:\s*(-?[\d.]+(?:e[-+]?\d+)?)/;
const SILENCE_END = /silence_end:\s*(-?[\d.]+(?:e[-+]?\d+)?)/;

/**
 * Turns silencedetect's log lines into silences. Tolerates noise between them, a start that is
 * never ended (closed at `durationSec` when given, dropped otherwise) and negative starts, which
 * silencedetect reports for silence at the very beginning.
 */
export function parseSilenceDetect(lines: Iterable<string>, durationSec?: number): Silence[] {
  const silences: Silence[] = [];
  let open: number | undefined;
  for (const line of lines) {
    const start = SILENCE_START.exec(line);
    if (start) {
      open = Math.max(0, Number(start[1]));
      continue;
    }
    const end = SILENCE_END.exec(line);
    if (end && open !== undefined) {
      const stop = Number(end[1]);
      if (Number.isFinite(open) && Number.isFinite(stop) && stop > open)
        silences.push({ start: open, end: stop });
      open = undefined;
    }
  }
  if (open !== undefined && durationSec !== undefined && durationSec > open) {
    silences.push({ start: open, end: durationSec });
  }
  return silences;
}

/** Copies [startSec, endSec) of a normalized WAV into its own WAV file, sample-accurately. */
export async function cutSegment(
  wav: string,
  startSec: number,
  endSec: number,
  outWav: string,
  options: FfmpegRunOptions = {},
): Promise<void> {
  if (!(endSec > startSec) || startSec < 0) {
    throw new MediaError('invalid_argument', `bad segment bounds ${startSec}..${endSec}`);
  }
  // Input seeking while re-encoding PCM (a no-op conversion) is sample-accurate; stream copy is not.
  const args = [
    ...ffmpegReading(wav, ['-ss', startSec.toFixed(3)]),
    ...['-t', String(Number((endSec - startSec).toFixed(3))), '-map_metadata', '-1'],
  ];
  await writeWav(args, outWav, options);
}

/**
 * Finishes ffmpeg's `args` (input and options) as 16 kHz mono PCM WAV written under a .partial
 * name, renamed once complete, so no reader ever sees half a file; a failed run leaves nothing behind.
 */
async function writeWav(args: string[], outWav: string, options: FfmpegRunOptions): Promise<void> {
  const partial = `${outWav}.partial`;
  const wav = ['-ac', '1', '-ar', String(SAMPLE_RATE), '-acodec', 'pcm_s16le', '-f', 'wav', '-y', partial];
  try {
    await runFfmpeg([...args, ...wav], options);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  await rename(partial, outWav);
}

/** Runs ffmpeg with `args` under runProcess; its failures become MediaErrors with the same code. */
async function runFfmpeg(
  args: string[],
  { signal, timeoutMs = DEFAULT_TIMEOUT_MS, tools = DEFAULT_MEDIA_TOOLS }: FfmpegRunOptions,
  onStderrLine?: RunOptions['onStderrLine'],
): Promise<void> {
  try {
    await runProcess(tools.ffmpeg, args, { signal, timeoutMs, onStderrLine });
  } catch (err) {
    throw isProcessError(err) ? mediaErrorFrom(err) : err;
  }
}

function throwIfAborted(signal: AbortSignal | undefined, command: string): void {
  if (signal?.aborted)
    throw new MediaError('aborted', `${command} aborted`, { command, cause: signal.reason });
}
