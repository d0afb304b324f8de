// Binds the pipeline to the real media layer: ffmpeg for AudioTools, whisper.cpp for the
// Transcriber. Imported lazily by main.ts, so an API-only process never loads it.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import {
  cutSegment,
  DEFAULT_MEDIA_TOOLS,
  detectSilences,
  type MediaToolPaths,
  normalize,
  probeDuration,
} from '../media/ffmpeg.js';
import { findExecutable } from '../media/find-executable.js';
import { planSegments } from '../media/segment-plan.js';
import { locateWhisperBinary, type Transcriber, WhisperCppTranscriber } from '../media/whisper.js';
import type { AudioTools } from './audio-tools.js';

export interface EngineConfig {
  whisperModel: string;
  /** null: the binary backend/whisper/build.sh built (locateWhisperBinary). */
  whisperBinary: string | null;
  threads: number;
  /** Greedy decoding without fallback; needed by the random-weight test model. */
  fastDecode?: boolean;
}

/** What a job needs besides Redis, each checked on its own. */
export type EnginePart = 'ffmpeg' | 'ffprobe' | 'whisper' | 'model';

/** One part missing: `detail` for the operator (paths included), `notice` for clients (none). */
export interface EngineProblem {
  readonly part: EnginePart;
  readonly detail: string;
  readonly notice: string;
}

/** Whisper's encoder window; segments aim at it and cut at silences near it. */
const SEGMENT_TARGET_SEC = 30;

export function createAudioTools(tools: MediaToolPaths = DEFAULT_MEDIA_TOOLS): AudioTools {
  return {
    normalize: (input, outWav, o) =>
      normalize(input, outWav, { signal: o?.signal, maxDurationSec: o?.maxDurationSec, tools }),
    probeDuration: (file) => probeDuration(file, { tools }),
    async planSegments(wav, durationSec, o) {
      const silences = await detectSilences(wav, { signal: o?.signal, durationSec, tools });
      return planSegments(durationSec, silences, { targetSec: SEGMENT_TARGET_SEC }).map(({ start, end }) => ({
        start,
        end,
      }));
    },
    cutSegment: (wav, start, end, out, o) => cutSegment(wav, start, end, out, { signal: o?.signal, tools }),
  };
}

const INSTALL_FFMPEG = 'apt-get install ffmpeg, or brew install ffmpeg';

/** ffmpeg and ffprobe, each found where a job would run it from, or what is missing. */
export async function audioToolProblems(tools: MediaToolPaths): Promise<EngineProblem[]> {
  const problems: EngineProblem[] = [];
  for (const [part, variable] of [
    ['ffmpeg', 'FFMPEG_PATH'],
    ['ffprobe', 'FFPROBE_PATH'],
  ] as const) {
    const command = tools[part];
    if ((await findExecutable(command)) !== null) continue;
    const where = command.includes('/')
      ? `${variable}=${command} is not an executable file`
      : `not found on PATH`;
    problems.push({
      part,
      detail: `${part} ${where}: install it (${INSTALL_FFMPEG}), or set ${variable} to its path`,
      notice: `${part} is not installed on the server: install it (${INSTALL_FFMPEG}) or set ${variable}`,
    });
  }
  return problems;
}

/** whisper.cpp's binary and the model, or what is missing and how to fix it. */
export async function whisperProblems(config: EngineConfig): Promise<EngineProblem[]> {
  const problems: EngineProblem[] = [];
  const binaryNotice =
    'whisper.cpp is not built on the server: run `npm run build:whisper` or set WHISPER_BIN';
  let binary: string | null = null;
  try {
    binary = config.whisperBinary ?? locateWhisperBinary();
  } catch (err) {
    problems.push({
      part: 'whisper',
      detail: err instanceof Error ? err.message : String(err),
      notice: binaryNotice,
    });
  }
  if (binary !== null) {
    try {
      await access(binary, constants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      problems.push({
        part: 'whisper',
        detail:
          `whisper.cpp binary WHISPER_BIN=${binary} is not executable (${code}): point WHISPER_BIN at ` +
          "whisper.cpp's main, or unset it to use the one `npm run build:whisper` builds",
        notice: binaryNotice,
      });
    }
  }
  try {
    await access(config.whisperModel, constants.R_OK);
  } catch {
    problems.push({
      part: 'model',
      detail:
        `whisper model not found at ${config.whisperModel}: set WHISPER_MODEL to a ggml model file, ` +
        'or run `npx floodgate model download base.en`',
      notice: 'no whisper model: set WHISPER_MODEL or run `npx floodgate model download base.en`',
    });
  }
  return problems;
}

export async function createWhisperTranscriber(config: EngineConfig): Promise<Transcriber> {
  return new WhisperCppTranscriber({
    binary: config.whisperBinary ?? locateWhisperBinary(),
    model: config.whisperModel,
    threads: config.threads,
    fastDecode: config.fastDecode ?? false,
  });
}
