// Each side carries only its own dependencies: the backend's runtime packages are package.json's
// optionalDependencies, so `npm ci --omit=optional` (and the proxy image) installs the proxy alone.
// Checked from the sources and the lockfile, without a network: the proxy's code never imports a
// backend package, nothing the proxy needs depends on one, and the CLI reports a left-out backend on
// one line.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { whyBackendMissing } from '../../../cli/package.js';
import { PROJECT_ROOT } from '../../helpers/proxy.js';

const root = (...p: string[]) => join(PROJECT_ROOT, ...p);
const pkg = JSON.parse(readFileSync(root('package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
};
const lock = JSON.parse(readFileSync(root('package-lock.json'), 'utf8')) as {
  packages: Record<string, { optional?: boolean; dev?: boolean; dependencies?: Record<string, string> }>;
};
const BACKEND_ONLY = ['bullmq', 'busboy', 'cli-progress', 'whisper-node'];

function tsFiles(dir: string): string[] {
  return readdirSync(root(dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(`${dir}/${e.name}`) : e.name.endsWith('.ts') ? [`${dir}/${e.name}`] : [],
  );
}

/** Bare package names a file imports statically (`from 'x'`, `import 'x'`). */
function staticPackageImports(file: string): string[] {
  const text = readFileSync(root(file), 'utf8');
  return [...text.matchAll(/(?:\bfrom|^import)\s*['"]([^'"./][^'"]*)['"]/gm)]
    .map((m) => m[1]!)
    .filter((s) => !s.startsWith('node:'))
    .map((s) =>
      s
        .split('/')
        .slice(0, s.startsWith('@') ? 2 : 1)
        .join('/'),
    );
}

describe('dependencies', () => {
  it("lists the backend's runtime packages as optionalDependencies, and only those", () => {
    const optional = Object.keys(pkg.optionalDependencies).filter((n) => !n.startsWith('@types/'));
    // Whatever is listed must be backend-only, and the backend's core packages are listed.
    expect(BACKEND_ONLY).toEqual(expect.arrayContaining(optional));
    expect(optional).toEqual(expect.arrayContaining(['bullmq', 'busboy', 'whisper-node']));
    for (const name of optional) expect(pkg.dependencies, name).not.toHaveProperty(name);
  });

  it("keeps the backend's packages out of the proxy's code (proxy/, core/, and the CLI's static imports)", () => {
    const optional = new Set(Object.keys(pkg.optionalDependencies));
    const files = [
      ...tsFiles('proxy'),
      ...tsFiles('core'),
      'cli/floodgate.ts',
      'cli/package.ts',
      'cli/healthcheck.ts',
    ];
    const bad = files.flatMap((f) =>
      staticPackageImports(f)
        .filter((p) => optional.has(p))
        .map((p) => `${f}: ${p}`),
    );
    expect(bad).toEqual([]);
    // And the CLI reaches backend code only through import(): a static import would load it for `proxy`.
    const cli = readFileSync(root('cli', 'floodgate.ts'), 'utf8');
    expect(cli).not.toMatch(/^import[^;]*from\s*'\.\.\/backend\//m);
    expect(cli).not.toMatch(/^import[^;]*from\s*'\.\/stack\.js'/m);
  });

  it('has a lockfile in which --omit=optional drops every backend package and keeps every proxy one', () => {
    // npm marks a package `optional` when only optional edges reach it; those are what --omit=optional skips.
    for (const name of Object.keys(pkg.optionalDependencies)) {
      const entry = lock.packages[`node_modules/${name}`];
      expect(entry, name).toBeDefined();
      expect(entry!.optional || entry!.dev, `${name} is optional in package-lock.json`).toBe(true);
    }
    for (const name of Object.keys(pkg.dependencies)) {
      expect(lock.packages[`node_modules/${name}`]?.optional, name).not.toBe(true);
    }
    // The lockfile's root agrees with package.json (else `npm ci` refuses it).
    expect(lock.packages['']).toMatchObject({ optionalDependencies: pkg.optionalDependencies });
  });
});

describe('whyBackendMissing', () => {
  const notFound = (message: string) => Object.assign(new Error(message), { code: 'ERR_MODULE_NOT_FOUND' });

  it('names a left-out backend package and how to add it back, on one line', () => {
    const why = whyBackendMissing(
      notFound("Cannot find package 'bullmq' imported from /x/dist/backend/jobs/queue.js"),
    );
    expect(why).toContain("'bullmq' is not installed");
    expect(why).toContain('--omit=optional');
    expect(why).toContain('`npm ci`');
    expect(why).not.toContain('\n');
  });

  it('says the backend is not part of an install that lacks its code (the proxy image)', () => {
    const file = join('/app', 'dist', 'backend', 'main.js');
    const why = whyBackendMissing(
      notFound(`Cannot find module '${file}' imported from /app/dist/cli/floodgate.js`),
    );
    expect(why).toMatch(/^the backend is not part of this install/);
  });

  it('leaves any other error alone', () => {
    expect(whyBackendMissing(notFound("Cannot find package 'ioredis' imported from /x.js"))).toBeNull();
    expect(whyBackendMissing(new Error("Cannot find package 'bullmq'"))).toBeNull();
    expect(whyBackendMissing('bullmq')).toBeNull();
  });
});
