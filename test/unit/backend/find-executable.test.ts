// Finding ffmpeg and ffprobe the way spawn would, on this machine's real PATH and files: a name is
// looked up on PATH, a path is taken as it is, and what is missing is named with its fix.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audioToolProblems } from '../../../backend/jobs/media-adapters.js';
import { findExecutable } from '../../../backend/media/find-executable.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fg-find-exe-'));
  await writeFile(join(dir, 'tool'), '#!/bin/sh\n');
  await chmod(join(dir, 'tool'), 0o755);
  await writeFile(join(dir, 'plain'), 'not executable');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('findExecutable', () => {
  it('looks a name up on PATH, in order, skipping relative and empty entries', async () => {
    expect(await findExecutable('tool', `relative/dir::${dir}:/usr/bin`)).toBe(join(dir, 'tool'));
    expect(await findExecutable('tool', '/usr/bin')).toBeNull();
    expect(await findExecutable('plain', dir)).toBeNull();
    expect(await findExecutable('ffmpeg')).toMatch(/\/ffmpeg$/);
  });

  it('takes a path as it is: an executable file, not a directory or a plain file', async () => {
    expect(await findExecutable(join(dir, 'tool'), '')).toBe(join(dir, 'tool'));
    expect(await findExecutable(join(dir, 'plain'))).toBeNull();
    expect(await findExecutable(dir)).toBeNull();
    expect(await findExecutable(join(dir, 'missing'))).toBeNull();
    expect(await findExecutable('')).toBeNull();
  });
});

describe('audioToolProblems', () => {
  it('is empty when ffmpeg and ffprobe are where they are said to be', async () => {
    expect(await audioToolProblems({ ffmpeg: 'ffmpeg', ffprobe: 'ffprobe' })).toEqual([]);
  });

  it('names each missing tool, the variable that sets it, and how to install it', async () => {
    const problems = await audioToolProblems({
      ffmpeg: join(dir, 'missing'),
      ffprobe: 'ffprobe-not-installed',
    });
    expect(problems).toEqual([
      {
        part: 'ffmpeg',
        detail: `ffmpeg FFMPEG_PATH=${join(dir, 'missing')} is not an executable file: install it (apt-get install ffmpeg, or brew install ffmpeg), or set FFMPEG_PATH to its path`,
        notice:
          'ffmpeg is not installed on the server: install it (apt-get install ffmpeg, or brew install ffmpeg) or set FFMPEG_PATH',
      },
      {
        part: 'ffprobe',
        detail:
          'ffprobe not found on PATH: install it (apt-get install ffmpeg, or brew install ffmpeg), or set FFPROBE_PATH to its path',
        notice:
          'ffprobe is not installed on the server: install it (apt-get install ffmpeg, or brew install ffmpeg) or set FFPROBE_PATH',
      },
    ]);
  });
});
