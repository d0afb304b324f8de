// Test audio made at test time (no binary fixtures in git): ffmpeg's lavfi sources for tones and
// silences of exact lengths, espeak-ng where real words help. Every call uses an argument array.
import { randomBytes } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { runProcess } from '../../core/process.js';

export interface TonePatternOptions {
  /** Total length; must be positive (lavfi sources without a bound run forever). */
  totalSec: number;
  toneSec?: number;
  silenceSec?: number;
  frequencyHz?: number;
  sampleRate?: number;
  channels?: number;
}

/**
 * A tone/silence pattern: `toneSec` of a sine, `silenceSec` of digital silence, repeated, cut at
 * `totalSec`. The silences are at [k·p + toneSec, (k+1)·p) for p = toneSec + silenceSec.
 * The container follows the extension (.wav, .mp3, .ogg, …).
 */
export async function tonePattern(out: string, options: TonePatternOptions): Promise<string> {
  const {
    totalSec,
    toneSec = 5,
    silenceSec = 1,
    frequencyHz = 440,
    sampleRate = 16_000,
    channels = 1,
  } = options;
  if (!(totalSec > 0)) throw new Error('totalSec must be positive');
  const period = toneSec + silenceSec;
  const expr = `if(lt(mod(t\\,${period})\\,${toneSec})\\,0.5*sin(2*PI*${frequencyHz}*t)\\,0)`;
  const layout = channels === 1 ? 'mono' : 'stereo';
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    `aevalsrc=${expr}:s=${sampleRate}:c=${layout}:d=${totalSec}`,
    '-t',
    String(totalSec),
    out,
  ]);
  return out;
}

/** Where the silences of `tonePattern` are, for comparing with what silencedetect finds. */
export function tonePatternSilences(
  totalSec: number,
  toneSec = 5,
  silenceSec = 1,
): { start: number; end: number }[] {
  const silences: { start: number; end: number }[] = [];
  for (let t = 0; t + toneSec < totalSec; t += toneSec + silenceSec) {
    silences.push({ start: t + toneSec, end: Math.min(totalSec, t + toneSec + silenceSec) });
  }
  return silences;
}

/** Speech by espeak-ng (a 22.05 kHz mono WAV), for tests where real words help. */
export async function speech(out: string, text: string, { wordsPerMinute = 160 } = {}): Promise<string> {
  await runProcess('espeak-ng', ['-s', String(wordsPerMinute), '-w', out, text], { timeoutMs: 30_000 });
  return out;
}

/** Bytes no decoder accepts (a fixed seed is not needed: any random bytes fail to decode). */
export async function randomBytesFile(out: string, size = 4096): Promise<string> {
  await writeFile(out, randomBytes(size));
  return out;
}

/** The first `bytes` of `source`: a file cut short, as an interrupted upload leaves it. */
export async function truncatedCopy(source: string, out: string, bytes: number): Promise<string> {
  const data = await readFile(source);
  await writeFile(out, data.subarray(0, bytes));
  return out;
}

export interface WavInfo {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** The format tag: 1 is integer PCM. */
  format: number;
  dataBytes: number;
}

/** Reads a RIFF/WAVE header, walking chunks (ffmpeg may write LIST before data). */
export async function readWavInfo(path: string): Promise<WavInfo> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(4096);
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    const buf = head.subarray(0, bytesRead);
    if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') {
      throw new Error(`${path} is not a RIFF/WAVE file`);
    }
    let offset = 12;
    let fmt: Omit<WavInfo, 'dataBytes'> | undefined;
    while (offset + 8 <= buf.length) {
      const id = buf.toString('ascii', offset, offset + 4);
      const size = buf.readUInt32LE(offset + 4);
      if (id === 'fmt ') {
        fmt = {
          format: buf.readUInt16LE(offset + 8),
          channels: buf.readUInt16LE(offset + 10),
          sampleRate: buf.readUInt32LE(offset + 12),
          bitsPerSample: buf.readUInt16LE(offset + 22),
        };
      } else if (id === 'data') {
        if (!fmt) throw new Error(`${path}: data chunk before fmt`);
        return { ...fmt, dataBytes: size };
      }
      offset += 8 + size + (size % 2);
    }
    throw new Error(`${path}: no data chunk in the first 4 KiB`);
  } finally {
    await file.close();
  }
}

async function ffmpeg(args: string[]): Promise<void> {
  await runProcess('ffmpeg', ['-hide_banner', '-nostats', '-loglevel', 'error', '-y', ...args], {
    timeoutMs: 60_000,
  });
}
