// What the CLI reads from the package.json it was installed with: the version `floodgate --version`
// prints, and the backend's packages (optionalDependencies), which an install may leave out.
import { readFileSync } from 'node:fs';
import { sep } from 'node:path';
import { projectPath } from '../core/paths.js';

interface PackageJson {
  name: string;
  version: string;
  optionalDependencies?: Record<string, string>;
}

let cached: PackageJson | undefined;

/** The package.json above this module (core/paths.ts walks up to it), from sources or from dist/. */
export function packageJson(): PackageJson {
  cached ??= JSON.parse(readFileSync(projectPath('package.json'), 'utf8')) as PackageJson;
  return cached;
}

/** The package a bare specifier names: `bullmq` → bullmq, `@scope/pkg/sub` → @scope/pkg. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
}

/**
 * One line saying what is missing and how to add it, when `err` is the failed import of a backend
 * package this install left out (`npm install --omit=optional`) or of backend code this install does
 * not hold (the proxy image); null for any other error.
 */
export function whyBackendMissing(err: unknown): string | null {
  if (!(err instanceof Error) || (err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') return null;
  const pkg = /Cannot find package '([^']+)'/.exec(err.message)?.[1];
  if (pkg !== undefined) {
    const { name, version, optionalDependencies = {} } = packageJson();
    if (!(packageName(pkg) in optionalDependencies)) return null;
    return (
      `'${packageName(pkg)}' is not installed: it is one of the backend's dependencies ` +
      `(optionalDependencies), which this install left out (--omit=optional). Add them by installing ` +
      `again without --omit=optional: \`npm ci\` in a clone, \`npm install ./${name}-${version}.tgz\` elsewhere`
    );
  }
  const file = /Cannot find module '([^']+)'/.exec(err.message)?.[1];
  if (file?.includes(`${sep}backend${sep}`)) {
    return (
      'the backend is not part of this install (the proxy image holds only the proxy): ' +
      'run the backend image (Dockerfile.backend), or `npm ci` in a clone'
    );
  }
  return null;
}

/** `load()`, or, when it fails for want of the backend, that reason on one line and exit 1. */
export async function importBackend<T>(command: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const why = whyBackendMissing(err);
    if (why === null) throw err;
    process.stderr.write(`floodgate ${command}: ${why}\n`);
    process.exit(1);
  }
}
