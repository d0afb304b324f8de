// The media layer for real: ffmpeg, ffprobe, espeak-ng and the whisper.cpp binary built by
// backend/whisper/build.sh, with the tiny generated model. Nothing is built here; a missing
// binary fails every test with the command that builds it.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMediaError } from '../../../backend/media/errors.js';
import { cutSegment, detectSilences, normalize, probeDuration } from '../../../backend/media/ffmpeg.js';
import { offsetTranscript, planSegments } from '../../../backend/media/segment-plan.js';
import { locateWhisperBinary, WhisperCppTranscriber } from '../../../backend/media/whisper.js';
import {
  randomBytesFile,
  readWavInfo,
  speech,
  tonePattern,
  tonePatternSilences,
  truncatedCopy,
} from '../../helpers/audio.js';
import { tinyGgmlModelPath } from '../../helpers/ggml-model.js';
import { mediaFailure } from '../../helpers/media-error.js';
import { waitFor } from '../../helpers/wait.js';

let dir: string;
let binary: string;
let model: string;

beforeAll(async () => {
  // Throws "whisper.cpp binary not found at …; build it with `npm run build:whisper`" when absent.
  binary = locateWhisperBinary();
  model = await tinyGgmlModelPath();
  dir = await mkdtemp(join(tmpdir(), 'floodgate-media-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Pids of running processes whose command line mentions `needle` (zombies excluded). */
function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (cmdline.includes(needle) && state !== 'Z') found.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

describe('media pipeline (ffmpeg + whisper.cpp, tiny model)', () => {
  it('normalizes, probes, finds silences, plans, cuts and transcribes 70 s of audio', async () => {
    // A 22.05 kHz stereo MP3, so normalize has real work: decode, downmix, resample.
    const source = await tonePattern(join(dir, 'source.mp3'), {
      totalSec: 70,
      sampleRate: 22_050,
      channels: 2,
    });
    const wav = join(dir, 'audio.wav');
    await normalize(source, wav);
    expect(await readWavInfo(wav)).toMatchObject({
      sampleRate: 16_000,
      channels: 1,
      bitsPerSample: 16,
      format: 1,
    });

    const duration = await probeDuration(wav);
    expect(duration).toBeGreaterThan(69.9);
    expect(duration).toBeLessThan(70.2); // the MP3 encoder's padding adds a few ms

    const silences = await detectSilences(wav, { durationSec: duration });
    const expected = tonePatternSilences(70);
    expect(silences).toHaveLength(expected.length);
    silences.forEach((s, i) => {
      expect(Math.abs(s.start - expected[i]!.start)).toBeLessThan(0.1);
      expect(Math.abs(s.end - expected[i]!.end)).toBeLessThan(0.1);
    });

    const plan = planSegments(duration, silences);
    expect(plan).toHaveLength(3);
    expect(Math.abs(plan[0]!.end - 29.5)).toBeLessThan(0.1);
    expect(Math.abs(plan[1]!.end - 59.5)).toBeLessThan(0.1);

    const transcriber = new WhisperCppTranscriber({ binary, model, threads: 2, fastDecode: true });
    const timeline: { start: number; end: number; text: string }[] = [];
    const segmentFiles: string[] = [];
    const transcripts: Awaited<ReturnType<WhisperCppTranscriber['transcribe']>>[] = [];
    for (const segment of plan) {
      const file = join(dir, `segment-${segment.index}.wav`);
      await cutSegment(wav, segment.start, segment.end, file);
      segmentFiles.push(file);
      expect(Math.abs((await probeDuration(file)) - (segment.end - segment.start))).toBeLessThan(0.002);

      const started = performance.now();
      const transcript = await transcriber.transcribe(file, { language: 'en' });
      const ms = performance.now() - started;
      console.info(
        `segment ${segment.index} (${(segment.end - segment.start).toFixed(1)} s): ${ms.toFixed(0)} ms, ` +
          `${transcript.segments.length} whisper segments`,
      );
      expect(transcript.language).toBe('en');
      expect(transcript.segments.length).toBeGreaterThan(0);
      for (const s of transcript.segments) {
        expect(s.start).toBeGreaterThanOrEqual(0);
        expect(s.end).toBeGreaterThanOrEqual(s.start);
        expect(s.text.length).toBeGreaterThan(0);
      }
      transcripts.push(transcript);
      timeline.push(...offsetTranscript(segment, transcript.segments));
    }

    // One timeline, in order, inside the file.
    expect(timeline.length).toBeGreaterThanOrEqual(plan.length);
    timeline.forEach((s, i) => {
      expect(s.end).toBeGreaterThanOrEqual(s.start);
      expect(s.end).toBeLessThanOrEqual(duration);
      if (i > 0) expect(s.start).toBeGreaterThanOrEqual(timeline[i - 1]!.start);
    });

    // Same input, same output: resumed jobs depend on it.
    expect(await transcriber.transcribe(segmentFiles[0]!, { language: 'en' })).toEqual(transcripts[0]);
  }, 60_000); // ~3 s on an idle 2-core machine; CI runs other files alongside

  it('normalizes espeak-ng speech and transcribes it', async () => {
    const spoken = await speech(
      join(dir, 'speech.wav'),
      'The circuit breaker opened. Jobs wait in the queue. Then the engine recovers.',
    );
    expect((await readWavInfo(spoken)).sampleRate).toBe(22_050);
    const wav = join(dir, 'speech-16k.wav');
    await normalize(spoken, wav);
    expect(await readWavInfo(wav)).toMatchObject({ sampleRate: 16_000, channels: 1, bitsPerSample: 16 });
    expect(await probeDuration(wav)).toBeGreaterThan(2);

    const transcriber = new WhisperCppTranscriber({ binary, model, threads: 2, fastDecode: true });
    const transcript = await transcriber.transcribe(wav);
    expect(transcript.language).toBe('en'); // an English-only vocabulary forces it
    expect(transcript.segments.length).toBeGreaterThan(0);
  });

  it('kills the whisper process promptly on abort', async () => {
    // Two minutes with beam search and fallbacks: many seconds of work with the tiny model.
    const long = await tonePattern(join(dir, 'long-for-abort.wav'), { totalSec: 120 });
    const transcriber = new WhisperCppTranscriber({ binary, model, threads: 1, fastDecode: false });
    const controller = new AbortController();
    const run = transcriber.transcribe(long, { signal: controller.signal });
    const [pid] = await waitFor(
      () => {
        const pids = processesMentioning(long);
        return pids.length > 0 ? pids : null;
      },
      { what: 'whisper.cpp to start' },
    );

    const abortedAt = performance.now();
    controller.abort(new Error('job cancelled'));
    const err = await mediaFailure(run);
    const latencyMs = performance.now() - abortedAt;
    console.info(`abort → rejection in ${latencyMs.toFixed(1)} ms (pid ${pid})`);
    expect(err.code).toBe('aborted');
    expect(latencyMs).toBeLessThan(1000);
    expect(processesMentioning(long)).toEqual([]);
  });
});

describe('invalid audio', () => {
  let mp3: string;
  beforeAll(async () => {
    mp3 = await tonePattern(join(dir, 'whole.mp3'), { totalSec: 10 });
  });

  async function expectInvalid(file: string): Promise<void> {
    expect((await mediaFailure(probeDuration(file))).code).toBe('invalid_audio');
    const out = join(dir, `${file.split('/').pop()}.normalized.wav`);
    expect((await mediaFailure(normalize(file, out))).code).toBe('invalid_audio');
    // No half-written output is left for a resumed job to trust.
    await expect(stat(out)).rejects.toThrow();
    await expect(stat(`${out}.partial`)).rejects.toThrow();
  }

  it('rejects random bytes', async () => {
    await expectInvalid(await randomBytesFile(join(dir, 'random.bin'), 8192));
  });

  it('rejects an empty file', async () => {
    const empty = join(dir, 'empty.wav');
    await writeFile(empty, '');
    await expectInvalid(empty);
  });

  it('rejects an MP3 truncated inside its first frame', async () => {
    // ID3 tag (45 bytes), then the Info frame and the first audio frame; 200 bytes ends inside them.
    await expectInvalid(await truncatedCopy(mp3, join(dir, 'truncated.mp3'), 200));
  });

  it('rejects a WAV with a header and no samples, once normalized', async () => {
    const header = Buffer.alloc(44);
    header.write('RIFF', 0, 'ascii');
    header.writeUInt32LE(36, 4);
    header.write('WAVEfmt ', 8, 'ascii');
    header.writeUInt32LE(16, 16);
    header.writeUInt16LE(1, 20); // PCM
    header.writeUInt16LE(1, 22); // mono
    header.writeUInt32LE(16_000, 24);
    header.writeUInt32LE(32_000, 28);
    header.writeUInt16LE(2, 32);
    header.writeUInt16LE(16, 34);
    header.write('data', 36, 'ascii');
    header.writeUInt32LE(0, 40);
    const file = join(dir, 'no-samples.wav');
    await writeFile(file, header);
    const out = join(dir, 'no-samples-16k.wav');
    // Whether ffmpeg accepts such a file varies; the probe of what it produced must not.
    const normalized = await normalize(file, out).then(
      () => true,
      (err: unknown) => {
        expect(isMediaError(err, 'invalid_audio')).toBe(true);
        return false;
      },
    );
    if (normalized) expect((await mediaFailure(probeDuration(out))).code).toBe('invalid_audio');
  });

  it('salvages the decodable part of an MP3 cut in the middle', async () => {
    const { size } = await stat(mp3);
    const half = await truncatedCopy(mp3, join(dir, 'half.mp3'), Math.floor(size / 2));
    const out = join(dir, 'half-16k.wav');
    await normalize(half, out);
    const duration = await probeDuration(out);
    expect(duration).toBeGreaterThan(4);
    expect(duration).toBeLessThan(6);
  });

  it('rejects audio outside the length limits', async () => {
    expect((await mediaFailure(probeDuration(mp3, { maxDurationSec: 5 }))).code).toBe('invalid_audio');
    expect((await mediaFailure(probeDuration(mp3, { minDurationSec: 11 }))).code).toBe('invalid_audio');
    expect(await probeDuration(mp3, { minDurationSec: 1, maxDurationSec: 11 })).toBeGreaterThan(9.9);
  });

  it('decodes no more than a second past maxDurationSec', async () => {
    const out = join(dir, 'capped-16k.wav');
    await normalize(mp3, out, { maxDurationSec: 3 });
    const duration = await probeDuration(out);
    expect(duration).toBeGreaterThan(3.9);
    expect(duration).toBeLessThan(4.1);
    expect((await stat(out)).size).toBeLessThan(4.1 * 32_000 + 1024);
  });
});

describe('uploads that name other files', () => {
  // A playlist or a concat list is a few bytes of text that would make ffmpeg read the files it
  // names. Whatever the target, and whether it exists, the answer is the same invalid_audio, and
  // its message names no path.
  const hls = (target: string) =>
    `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:7,\nfile://${target}\n#EXT-X-ENDLIST\n`;

  async function expectRefused(name: string, text: string, ...hidden: string[]): Promise<void> {
    const upload = join(dir, name);
    await writeFile(upload, text);
    const out = join(dir, `${name}.normalized.wav`);
    for (const err of [
      await mediaFailure(probeDuration(upload)),
      await mediaFailure(normalize(upload, out)),
    ]) {
      expect(err.code, name).toBe('invalid_audio');
      for (const path of [...hidden, dir]) expect(err.message, name).not.toContain(path);
    }
    await expect(stat(out)).rejects.toThrow();
  }

  it('refuses an HLS playlist naming a local file, existing or not', async () => {
    // MPEG-TS, a segment type HLS accepts: without the restriction this playlist decodes to 7 s.
    const local = await tonePattern(join(dir, 'local-secret.ts'), { totalSec: 7 });
    const missing = join(dir, 'no-such-file.ts');
    await expectRefused('playlist-local.m3u8', hls(local), local);
    await expectRefused('playlist-missing.m3u8', hls(missing), missing);
  });

  it('refuses an ffconcat list naming a file beside it', async () => {
    // Relative names pass the concat demuxer's own `safe` check, so this one would be read.
    await tonePattern(join(dir, 'sibling.wav'), { totalSec: 4 });
    await expectRefused('list.ffconcat', 'ffconcat version 1.0\nfile sibling.wav\n', 'sibling.wav');
  });

  it('still reads the common containers', async () => {
    for (const ext of ['wav', 'mp3', 'ogg', 'flac', 'm4a', 'webm']) {
      const source = await tonePattern(join(dir, `container.${ext}`), { totalSec: 2 });
      const out = join(dir, `container-${ext}-16k.wav`);
      await normalize(source, out);
      expect(await probeDuration(out), ext).toBeGreaterThan(1.9);
    }
  });
});

describe('file names', () => {
  it('reach ffmpeg and whisper.cpp verbatim, whatever a shell would make of them', async () => {
    const odd = join(dir, `it's a "test" $(touch pwned) ; & * \`x\`.wav`);
    await tonePattern(odd, { totalSec: 3 });
    const out = join(dir, 'odd name → out.wav');
    await normalize(odd, out);
    expect(await probeDuration(out)).toBeGreaterThan(2.9);
    const transcript = await new WhisperCppTranscriber({
      binary,
      model,
      threads: 2,
      fastDecode: true,
    }).transcribe(out);
    expect(transcript.segments.length).toBeGreaterThan(0);
    await expect(stat(join(process.cwd(), 'pwned'))).rejects.toThrow();
  });
});

describe('ffmpeg cancellation', () => {
  it('aborts a normalize that has not started yet and leaves no output', async () => {
    const source = await tonePattern(join(dir, 'abort-src.wav'), { totalSec: 5 });
    const out = join(dir, 'abort-out.wav');
    const controller = new AbortController();
    const run = normalize(source, out, { signal: controller.signal });
    controller.abort();
    expect((await mediaFailure(run)).code).toBe('aborted');
    await expect(stat(out)).rejects.toThrow();
    await expect(stat(`${out}.partial`)).rejects.toThrow();
  });

  it('refuses to start with an already aborted signal', async () => {
    const source = join(dir, 'abort-src.wav');
    expect(
      (await mediaFailure(cutSegment(source, 0, 1, join(dir, 'x.wav'), { signal: AbortSignal.abort() })))
        .code,
    ).toBe('aborted');
  });

  it('times out', async () => {
    const source = await tonePattern(join(dir, 'timeout-src.wav'), { totalSec: 5 });
    expect((await mediaFailure(detectSilences(source, { timeoutMs: 1 }))).code).toBe('timeout');
  });
});
