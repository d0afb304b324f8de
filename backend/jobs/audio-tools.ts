// What the runner needs from the media layer, as one narrow interface, so the pipeline can be
// tested with fakes and the media layer can change without touching the sequencing.
import type { PlannedSegment } from './job-store.js';

export interface AudioCallOptions {
  signal?: AbortSignal;
}

export interface NormalizeOptions extends AudioCallOptions {
  /**
   * Decode no further than this (plus a second, so that longer input still reads as too long): an
   * upload of many hours costs the limit's worth of work and disk, not its own.
   */
  maxDurationSec?: number;
}

export interface AudioTools {
  /** Any input ffmpeg decodes → 16 kHz mono PCM WAV at `outWav`. Rejects on undecodable input. */
  normalize(input: string, outWav: string, options?: NormalizeOptions): Promise<void>;
  /** Seconds. Rejects with code 'invalid_audio' when the file holds no decodable audio. */
  probeDuration(file: string, options?: AudioCallOptions): Promise<number>;
  /** ~30 s segments covering [0, durationSec], cut at silences where possible. */
  planSegments(wav: string, durationSec: number, options?: AudioCallOptions): Promise<PlannedSegment[]>;
  /** Writes [startSec, endSec) of `wav` to `out`. */
  cutSegment(
    wav: string,
    startSec: number,
    endSec: number,
    out: string,
    options?: AudioCallOptions,
  ): Promise<void>;
}
