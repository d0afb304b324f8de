// Locates files that ship beside the sources (Lua scripts, fixtures) from code that may run either from
// sources (tsx, vitest: core/…) or compiled (node: dist/core/…). Both live under the directory that
// holds package.json, so we walk up to it instead of counting `..` segments.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/** The nearest ancestor of this module's directory that contains package.json. */
export function projectRoot(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) {
      cached = dir;
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** `projectPath('proxy', 'ratelimit', 'lua', 'x.lua')` → an absolute path under the project root. */
export function projectPath(...parts: string[]): string {
  return join(projectRoot(), ...parts);
}
