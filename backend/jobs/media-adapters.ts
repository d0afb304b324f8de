// Binds the pipeline to the real media layer: ffmpeg for AudioTools, whisper.cpp for the
// Transcriber. Imported lazily by main.ts, so an API-only process never loads it.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { cutSegment, detectSilences, normalize, probeDuration } from '../media/ffmpeg.js';
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

/** Whisper's encoder window; segments aim at it and cut at silences near it. */
const SEGMENT_TARGET_SEC = 30;

export function createAudioTools(): AudioTools {
  return {
    normalize: (input, outWav, o) =>
      normalize(input, outWav, { signal: o?.signal, maxDurationSec: o?.maxDurationSec }),
    probeDuration: (file) => probeDuration(file),
    async planSegments(wav, durationSec, o) {
      const silences = await detectSilences(wav, { signal: o?.signal, durationSec });
      return planSegments(durationSec, silences, { targetSec: SEGMENT_TARGET_SEC }).map(({ start, end }) => ({
        start,
        end,
      }));
    },
    cutSegment: (wav, start, end, out, o) => cutSegment(wav, start, end, out, { signal: o?.signal }),
  };
}

/** null when whisper.cpp and the model are in place; otherwise what is missing and how to fix it. */
export async function whyEngineNotReady(config: EngineConfig): Promise<string | null> {
  let binary: string;
  try {
    binary = config.whisperBinary ?? locateWhisperBinary();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  try {
    await access(binary, constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return (
      `whisper.cpp binary WHISPER_BIN=${binary} is not executable (${code}): point WHISPER_BIN at ` +
      "whisper.cpp's main, or unset it to use the one `npm run build:whisper` builds"
    );
  }
  try {
    await access(config.whisperModel, constants.R_OK);
  } catch {
    return (
      `whisper model not found at ${config.whisperModel}: set WHISPER_MODEL to a ggml model file, ` +
      'or run `npx floodgate model download base.en`'
    );
  }
  return null;
}

export async function createWhisperTranscriber(config: EngineConfig): Promise<Transcriber> {
  return new WhisperCppTranscriber({
    binary: config.whisperBinary ?? locateWhisperBinary(),
    model: config.whisperModel,
    threads: config.threads,
    fastDecode: config.fastDecode ?? false,
  });
}
