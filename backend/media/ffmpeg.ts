// The audio steps of the pipeline, on ffmpeg/ffprobe through fluent-ffmpeg: normalize to the WAV
// whisper.cpp reads, probe the duration (the validate step), find silences, cut segments.
//
// fluent-ffmpeg never involves a shell: it resolves the binary with `which` (or FFMPEG_PATH /
// FFPROBE_PATH) and calls child_process.spawn(path, argsArray) — lib/processor.js and
// lib/ffprobe.js in 2.1.3 — so file names reach ffmpeg verbatim, whatever they contain.
//
// Every file reaches ffmpeg and ffprobe through restrictedInput(), which confines the read to that
// one file. The messages of invalid_audio errors reach clients, so they are our own words: what
// the tool said (paths included) stays in stderrTail, for the log.
import { rename, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import ffmpeg from 'fluent-ffmpeg';
import { TailBuffer } from '../../core/process.js';
import { isMediaError, MediaError } from './errors.js';
import type { Silence } from './segment-plan.js';

export interface FfmpegRunOptions {
  signal?: AbortSignal;
  /** Kill ffmpeg and fail with `timeout` after this long; default 10 minutes. */
  timeoutMs?: number;
}

export const SAMPLE_RATE = 16_000;
const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const STDERR_TAIL_BYTES = 4096;
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

/** A fluent-ffmpeg command reading `file` under the restrictedInput() rules. */
function ffmpegReading(file: string, extraInputOptions: string[] = []): ffmpeg.FfmpegCommand {
  const { url, options } = restrictedInput(file);
  return ffmpeg(url).inputOptions([...QUIET, ...options, ...extraInputOptions]);
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
  const command = ffmpegReading(input)
    .noVideo()
    // The first audio stream only (cover art is a stream too); tags dropped, as nothing reads them.
    .outputOptions(['-map', '0:a:0', '-map_metadata', '-1', '-sn', '-dn', ...cap]);
  try {
    await writeWav(command, outWav, options);
  } catch (err) {
    if (!isMediaError(err, 'process_failed')) throw err;
    // ffmpeg's exit code cannot tell bad input from, say, a full disk; asking ffprobe about the
    // input can. If it finds no decodable audio, the input is to blame.
    const verdict = await probeDuration(input).then(
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
  /**
   * Checked before and after only: ffprobe reads little and returns fast, and fluent-ffmpeg gives
   * no handle to kill it.
   */
  signal?: AbortSignal;
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
  { maxDurationSec, minDurationSec, signal }: ProbeOptions = {},
): Promise<number> {
  throwIfAborted(signal, 'ffprobe');
  const { size } = await stat(file);
  if (size === 0) throw new MediaError('invalid_audio', 'empty file');

  const { url, options } = restrictedInput(file);
  const data = await new Promise<ffmpeg.FfprobeData>((resolve, reject) => {
    let settled = false;
    // fluent-ffmpeg may call back twice (its 'error' and 'exit' paths); the first answer wins.
    ffmpeg.ffprobe(url, [...options, '-v', 'error'], (err: unknown, result) => {
      if (settled) return;
      settled = true;
      if (err) {
        const message = err instanceof Error ? err.message : String(err);
        const cannotStart = /Cannot find ffprobe/.test(message);
        reject(
          new MediaError(
            cannotStart ? 'engine_unavailable' : 'invalid_audio',
            cannotStart ? 'ffprobe not found' : 'not decodable audio',
            { command: 'ffprobe', stderrTail: message.slice(-STDERR_TAIL_BYTES), cause: err },
          ),
        );
      } else {
        resolve(result);
      }
    });
  });

  throwIfAborted(signal, 'ffprobe');
  const audio = data.streams.filter((s) => s.codec_type === 'audio');
  if (audio.length === 0) throw new MediaError('invalid_audio', 'no audio stream');
  const candidates = [data.format.duration, ...audio.map((s) => s.duration)].map(Number);
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
  const command = ffmpegReading(wav)
    .audioFilters(`silencedetect=noise=${noiseDb}dB:d=${minSilenceSec}`)
    .format('null')
    .output('-');
  await runFfmpeg(command, options, (line) => {
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
  const command = ffmpegReading(wav, ['-ss', startSec.toFixed(3)])
    .duration(Number((endSec - startSec).toFixed(3)))
    .outputOptions(['-map_metadata', '-1']);
  await writeWav(command, outWav, options);
}

/**
 * Finishes `command` as 16 kHz mono PCM WAV written under a .partial name, renamed once complete,
 * so no reader ever sees half a file; a failed run leaves nothing behind.
 */
async function writeWav(
  command: ffmpeg.FfmpegCommand,
  outWav: string,
  options: FfmpegRunOptions,
): Promise<void> {
  const partial = `${outWav}.partial`;
  command.audioChannels(1).audioFrequency(SAMPLE_RATE).audioCodec('pcm_s16le').format('wav').output(partial);
  try {
    await runFfmpeg(command, options);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  await rename(partial, outWav);
}

/**
 * Runs a prepared fluent-ffmpeg command with a timeout and an AbortSignal, keeping the tail of
 * stderr. Settles only after ffmpeg has exited.
 */
function runFfmpeg(
  command: ffmpeg.FfmpegCommand,
  { signal, timeoutMs = DEFAULT_TIMEOUT_MS }: FfmpegRunOptions,
  onStderrLine?: (line: string) => void,
): Promise<void> {
  if (signal?.aborted) {
    return Promise.reject(new MediaError('aborted', 'ffmpeg not started: aborted', { cause: signal.reason }));
  }
  return new Promise<void>((resolve, reject) => {
    const tail = new TailBuffer(STDERR_TAIL_BYTES);
    let started = false;
    let killedFor: 'aborted' | 'timeout' | null = null;

    const kill = (why: 'aborted' | 'timeout'): void => {
      if (killedFor !== null) return;
      killedFor = why;
      if (started) command.kill('SIGKILL'); // otherwise 'start' does it, once there is a process
    };
    const onAbort = (): void => kill('aborted');
    const timer = setTimeout(() => kill('timeout'), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (err?: MediaError): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const killedError = (): MediaError => {
      const details = { command: 'ffmpeg', stderrTail: tail.toString(), cause: signal?.reason };
      return killedFor === 'aborted'
        ? new MediaError('aborted', 'ffmpeg aborted', details)
        : new MediaError('timeout', `ffmpeg timed out after ${timeoutMs} ms`, details);
    };

    command
      .on('start', () => {
        started = true;
        if (killedFor !== null) command.kill('SIGKILL');
      })
      .on('stderr', (line: string) => {
        tail.push(Buffer.from(`${line}\n`));
        onStderrLine?.(line);
      })
      .on('error', (err: Error) => {
        if (killedFor !== null) return settle(killedError());
        const stderrTail = tail.toString();
        // Failing before the process started means ffmpeg (or a codec it needs) is missing.
        const code = started ? 'process_failed' : 'engine_unavailable';
        // fluent-ffmpeg already appends ffmpeg's own error line to the message.
        settle(new MediaError(code, err.message, { command: 'ffmpeg', stderrTail, cause: err }));
      })
      .on('end', () => settle(killedFor === null ? undefined : killedError()));
    command.run();
  });
}

function throwIfAborted(signal: AbortSignal | undefined, command: string): void {
  if (signal?.aborted)
    throw new MediaError('aborted', `${command} aborted`, { command, cause: signal.reason });
}
