// What `npm pack` ships and what the installed command says about itself: the tarball holds the
// compiled code, the files the proxy reads beside it at run time (Lua, the dashboard page), the example
// configs, README and LICENSE, and nothing of the tests, benches or CI; `floodgate --version` prints
// package.json's version, from the sources and from dist/.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, runCli } from '../../helpers/proxy.js';

const root = (...p: string[]) => join(PROJECT_ROOT, ...p);
const pkg = JSON.parse(readFileSync(root('package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
  license: string;
};

describe('npm pack', () => {
  let files: string[];

  beforeAll(() => {
    // `npm test` follows `npm ci`, whose `prepare` builds dist/; build it when a checkout has none.
    if (!existsSync(root('dist', 'cli', 'floodgate.js'))) {
      execFileSync(
        process.execPath,
        [root('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
        {
          cwd: PROJECT_ROOT,
        },
      );
    }
    // --ignore-scripts: list what would ship without running `prepare` (a build) again.
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: PROJECT_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    files = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  }, 60_000);

  it('ships no tests, benches, CI scripts, screenshots, source maps or TypeScript sources', () => {
    const unwanted = files.filter(
      (f) =>
        /^(test|bench|\.ci|\.cache|\.data|node_modules)\//.test(f) ||
        /\.(png|map|tgz)$/.test(f) ||
        (f.endsWith('.ts') && !f.endsWith('.d.ts')),
    );
    expect(unwanted).toEqual([]);
  });

  it('ships the command, the code the proxy runs, and the files it reads beside that code', () => {
    const lua = readdirSync(root('proxy', 'ratelimit', 'lua')).map((f) => `proxy/ratelimit/lua/${f}`);
    expect(lua.length).toBeGreaterThan(0);
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'LICENSE',
        pkg.bin.floodgate!.replace(/^\.\//, ''),
        'dist/cli/healthcheck.js',
        'dist/proxy/main.js',
        'dist/backend/main.js',
        'proxy/http/dashboard/index.html',
        'config/proxy.yaml',
        'config/api-keys.yaml',
        'config/container.yaml',
        'backend/whisper/build.sh',
        ...lua,
      ]),
    );
  });

  it('is MIT-licensed, with the LICENSE to say so', () => {
    expect(pkg.license).toBe('MIT');
    expect(readFileSync(root('LICENSE'), 'utf8')).toMatch(
      /^MIT License\n\nCopyright \(c\) \d{4} Floodgate authors\n/,
    );
  });
});

describe('floodgate --version', () => {
  it('prints package.json version from the sources', async () => {
    const r = await runCli(['--version']);
    expect(r).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
  });

  it('prints it from dist/ too, run from any directory', () => {
    const r = spawnSync(process.execPath, [root('dist', 'cli', 'floodgate.js'), '-V'], {
      cwd: '/',
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${pkg.version}\n`);
  });
});
