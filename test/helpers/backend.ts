// Helpers for backend tests: fake media and engine (no ffmpeg, no whisper) with hooks to hold,
// fail or count calls, and an in-process backend on port 0 with its own prefix and DATA_DIR.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { AudioTools } from '../../backend/jobs/audio-tools.js';
import type { TranscribeOptions, Transcriber } from '../../backend/jobs/guarded-transcriber.js';
import { type BackendDeps, type RunningBackend, startBackend } from '../../backend/main.js';
import { type BackendSettings, backendSettingsFromEnv } from '../../backend/settings.js';
import { REDIS_URL, uniquePrefix } from './redis.js';

/**
 * Fake audio: an "audio file" is text holding its duration in seconds ("90"); anything else is
 * undecodable. Segments are planned every 30 s, and a cut segment file holds "start end".
 */
export function fakeAudioTools(): AudioTools {
  return {
    async normalize(input, outWav) {
      const text = (await readFile(input, 'utf8')).trim();
      if (!/^\d+(\.\d+)?$/.test(text))
        throw Object.assign(new Error('ffmpeg: Invalid data found'), { code: 'ffmpeg_failed' });
      await copyFile(input, outWav);
    },
    async probeDuration(file) {
      return Number((await readFile(file, 'utf8')).trim());
    },
    async planSegments(_wav, durationSec) {
      const plan = [];
      for (let start = 0; start < durationSec; start += 30)
        plan.push({ start, end: Math.min(durationSec, start + 30) });
      return plan;
    },
    async cutSegment(_wav, start, end, out) {
      await writeFile(out, `${start} ${end}`);
    },
  };
}

/** A fake engine: two text segments per audio segment, derived from its position. */
export class FakeTranscriber implements Transcriber {
  /** Segment start times (s) of every call, in order; -1 for a real WAV. */
  readonly calls: number[] = [];
  /** Calls whose segment starts at these times wait until release() (or abort). */
  private readonly holds = new Map<number, { resolve: () => void; entered: () => void }>();
  private readonly entered = new Map<number, Promise<void>>();
  failWith: Error | null = null;

  async transcribe(wavPath: string, options?: TranscribeOptions) {
    const raw = await readFile(wavPath);
    // A fake segment file says where it lies; a real 16 kHz s16 mono WAV only how long it is.
    const real = raw.subarray(0, 4).toString('latin1') === 'RIFF';
    const [start, end] = real
      ? [-1, -1 + (raw.length - 44) / 32_000]
      : (raw.toString('utf8').split(' ').map(Number) as [number, number]);
    this.calls.push(start);
    const hold = this.holds.get(start);
    if (hold) {
      hold.entered();
      await new Promise<void>((resolve, reject) => {
        hold.resolve = resolve;
        const signal = options?.signal;
        if (signal?.aborted) return reject(signal.reason);
        signal?.addEventListener(
          'abort',
          () => reject(Object.assign(new Error('killed'), { name: 'AbortError' })),
          {
            once: true,
          },
        );
      });
    }
    if (this.failWith) throw this.failWith;
    const half = (end - start) / 2;
    return {
      language: options?.language ?? 'en',
      segments: [
        { start: 0, end: half, text: ` words at ${start}` },
        { start: half, end: end - start, text: ` more at ${start + half}` },
      ],
    };
  }

  /** Makes the call for the segment starting at `startSec` wait; resolves once it has begun. */
  hold(startSec: number): Promise<void> {
    let entered!: () => void;
    const began = new Promise<void>((r) => {
      entered = r;
    });
    this.holds.set(startSec, { resolve: () => {}, entered });
    this.entered.set(startSec, began);
    return began;
  }

  release(startSec: number): void {
    const hold = this.holds.get(startSec);
    this.holds.delete(startSec);
    hold?.resolve();
  }
}

/** The transcript the fake engine yields for `durationSec` of fake audio. */
export function expectedFakeSegments(durationSec: number) {
  const out = [];
  for (let start = 0; start < durationSec; start += 30) {
    const end = Math.min(durationSec, start + 30);
    const half = (end - start) / 2;
    out.push({ start, end: start + half, text: `words at ${start}` });
    out.push({ start: start + half, end, text: `more at ${start + half}` });
  }
  return out;
}

/** A logger whose JSON lines tests can read. */
export function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

export interface TestBackend extends RunningBackend {
  url: string;
  prefix: string;
  dataDir: string;
  transcriber: FakeTranscriber;
  lines: Record<string, unknown>[];
  /** Shuts down and removes DATA_DIR if it made it (the caller deletes the Redis prefix). */
  dispose(): Promise<void>;
}

/** Settings to change and collaborators to replace; the rest are the test defaults below. */
export type TestBackendOptions = Partial<BackendSettings> & BackendDeps;

export async function startTestBackend(overrides: TestBackendOptions = {}): Promise<TestBackend> {
  const ownDir = overrides.dataDir === undefined;
  const dataDir = overrides.dataDir ?? (await mkdtemp(join(tmpdir(), 'fg-backend-')));
  const prefix = overrides.keyPrefix ?? uniquePrefix('backend');
  const transcriber = new FakeTranscriber();
  const { logger, lines } = memoryLogger();
  const {
    logger: l,
    transcriber: t,
    audio,
    clock,
    defaultMetrics,
    ...changed
  } = {
    transcriber,
    audio: fakeAudioTools(),
    logger,
    defaultMetrics: false,
    jobLeaseMs: 2_000,
    ...overrides,
  };
  // Settings come the production way (backend/settings.ts), from an environment of the test's own.
  const base = backendSettingsFromEnv({
    PORT: '0',
    REDIS_URL,
    REDIS_PREFIX: prefix,
    DATA_DIR: dataDir,
    WHISPER_MODEL: join(dataDir, 'no-model.bin'),
  });
  const backend = await startBackend(Object.freeze({ ...base, ...changed }), {
    logger: l,
    transcriber: t,
    audio,
    clock,
    defaultMetrics,
  });
  return {
    ...backend,
    url: `http://127.0.0.1:${backend.port}`,
    prefix,
    dataDir,
    transcriber: (overrides.transcriber as FakeTranscriber | undefined) ?? transcriber,
    lines,
    async dispose() {
      await backend.shutdown();
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
