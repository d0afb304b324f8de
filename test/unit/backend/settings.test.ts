// The backend's settings from the environment: the README's defaults, the policy's units, and
// errors that name the variable (or flag) at fault.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendSettingsFromEnv, SettingsError } from '../../../backend/settings.js';

function refusal(env: Record<string, string>, flags = {}): SettingsError {
  try {
    backendSettingsFromEnv(env, flags);
  } catch (err) {
    expect(err).toBeInstanceOf(SettingsError);
    return err as SettingsError;
  }
  throw new Error('expected the settings to be refused');
}

describe('backendSettingsFromEnv', () => {
  it('has the README defaults', () => {
    const dataDir = resolve('./.data');
    expect(backendSettingsFromEnv({})).toEqual({
      port: 8000,
      host: '127.0.0.1',
      role: 'all',
      redisUrl: 'redis://127.0.0.1:6379',
      keyPrefix: 'floodgate:',
      dataDir,
      whisperModel: resolve(dataDir, 'models', 'ggml-base.en.bin'),
      whisperBinary: null,
      whisperThreads: 2,
      whisperFastDecode: false,
      mediaTools: { ffmpeg: 'ffmpeg', ffprobe: 'ffprobe' },
      maxUploadBytes: 200 * 1024 * 1024,
      maxDurationSec: 7_200,
      checkpointIntervalMs: 30_000,
      checkpointEverySegments: 1,
      jobLeaseMs: 30_000,
      transcriptionWaitMs: 300_000,
    });
  });

  it('reads every variable, in the policy units', () => {
    const s = backendSettingsFromEnv({
      PORT: '9000',
      HOST: '0.0.0.0',
      BACKEND_ROLE: 'worker',
      REDIS_URL: 'redis://r:6379',
      REDIS_PREFIX: 'x:',
      DATA_DIR: '/srv/data',
      WHISPER_MODEL: '/m/model.bin',
      WHISPER_BIN: '/w/main',
      WHISPER_THREADS: '4',
      WHISPER_FAST_DECODE: 'true',
      FFMPEG_PATH: '/opt/ffmpeg/bin/ffmpeg',
      FFPROBE_PATH: 'tools/ffprobe',
      MAX_UPLOAD: '1kb',
      MAX_DURATION: '90m',
      CHECKPOINT_INTERVAL: '1.5s',
      CHECKPOINT_EVERY_SEGMENTS: '0',
      JOB_LEASE: '2s',
    });
    expect(s).toEqual({
      port: 9000,
      host: '0.0.0.0',
      role: 'worker',
      redisUrl: 'redis://r:6379',
      keyPrefix: 'x:',
      dataDir: '/srv/data',
      whisperModel: '/m/model.bin',
      whisperBinary: '/w/main',
      whisperThreads: 4,
      whisperFastDecode: true,
      mediaTools: { ffmpeg: '/opt/ffmpeg/bin/ffmpeg', ffprobe: resolve('tools/ffprobe') },
      maxUploadBytes: 1024,
      maxDurationSec: 5_400,
      checkpointIntervalMs: 1_500,
      checkpointEverySegments: null,
      jobLeaseMs: 2_000,
      transcriptionWaitMs: 300_000,
    });
    expect(Object.isFrozen(s)).toBe(true);
  });

  it('derives WHISPER_MODEL from DATA_DIR and treats an empty variable as unset', () => {
    const s = backendSettingsFromEnv({ DATA_DIR: '/srv/d', WHISPER_MODEL: '', PORT: '', JOB_LEASE: '' });
    expect(s.whisperModel).toBe('/srv/d/models/ggml-base.en.bin');
    expect(s.port).toBe(8000);
    expect(s.jobLeaseMs).toBe(30_000);
  });

  it('takes a bare number of bytes for MAX_UPLOAD, as max_body does', () => {
    expect(backendSettingsFromEnv({ MAX_UPLOAD: '4096' }).maxUploadBytes).toBe(4096);
  });

  it('refuses a duration without a unit, naming the variable', () => {
    expect(refusal({ JOB_LEASE: '30' }).message).toBe(
      'JOB_LEASE: duration 30 needs a unit; use a number with a unit: ms, s, m, h or d (e.g. 50ms, 2s, 1m)',
    );
    expect(refusal({ MAX_DURATION: '7200' }).message).toMatch(/^MAX_DURATION: duration 7200 needs a unit/);
    expect(refusal({ CHECKPOINT_INTERVAL: '1.5' }).message).toMatch(
      /^CHECKPOINT_INTERVAL: duration 1.5 needs a unit/,
    );
    expect(refusal({ OPENAI_WAIT: '300' }).message).toMatch(/^OPENAI_WAIT: duration 300 needs a unit/);
    expect(backendSettingsFromEnv({ OPENAI_WAIT: '90s' }).transcriptionWaitMs).toBe(90_000);
  });

  it('lists every refused variable, one a line', () => {
    expect(
      refusal({ PORT: 'x', WHISPER_THREADS: '-1', MAX_UPLOAD: 'lots', BACKEND_ROLE: 'both' }).problems,
    ).toEqual([
      'PORT: must be a whole number; got "x"',
      'BACKEND_ROLE: must be api, worker or all; got "both"',
      'WHISPER_THREADS: must be a whole number; got "-1"',
      expect.stringMatching(/^MAX_UPLOAD: invalid size "lots"/),
    ]);
  });

  it('puts flags over the variables and names the flag when it is wrong', () => {
    const s = backendSettingsFromEnv(
      { PORT: '1', HOST: 'h', BACKEND_ROLE: 'api' },
      { port: 2, role: 'worker' },
    );
    expect([s.port, s.host, s.role]).toEqual([2, 'h', 'worker']);
    expect(refusal({ BACKEND_ROLE: 'api' }, { role: 'x' }).message).toBe(
      '--role: must be api, worker or all; got "x"',
    );
  });
});
