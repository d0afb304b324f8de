// The layout's one rule, checked on every source file: cli/ sits above proxy/ and backend/, both of
// which sit above core/. proxy/ and backend/ never import each other, and core/ imports neither.
// Static imports, re-exports, `import('…')` and `require('…')` all count.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../core/paths.js';

const root = projectRoot();

/** Which top-level folders each folder must not import from. */
const FORBIDDEN: Record<string, readonly string[]> = {
  proxy: ['backend', 'cli'],
  backend: ['proxy', 'cli'],
  core: ['proxy', 'backend', 'cli'],
};

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...tsFiles(path));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

const SPECIFIER_RES = [
  /\bfrom\s*['"]([^'"]+)['"]/g, // import … from '…', export … from '…'
  /\bimport\s*['"]([^'"]+)['"]/g, // import '…' (side effects only)
  /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g, // import('…')
  /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g, // require('…')
];

/** Every module specifier in `source`. */
function specifiers(source: string): string[] {
  const found: string[] = [];
  for (const re of SPECIFIER_RES) for (const m of source.matchAll(re)) found.push(m[1]!);
  return found;
}

/** The top-level folder a relative specifier in `file` lands in, or null for a package import. */
function topFolderOf(file: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null;
  const target = relative(root, resolve(dirname(file), specifier));
  return target.split(sep)[0] ?? null;
}

/** `folder/file.ts: imports '…'` for each import that crosses the layout. */
function crossings(folder: string): string[] {
  const bad: string[] = [];
  for (const file of tsFiles(join(root, folder))) {
    for (const specifier of specifiers(readFileSync(file, 'utf8'))) {
      const target = topFolderOf(file, specifier);
      if (target !== null && FORBIDDEN[folder]!.includes(target)) {
        bad.push(`${relative(root, file)}: imports '${specifier}' (${target}/)`);
      }
    }
  }
  return bad;
}

describe('layout', () => {
  for (const folder of Object.keys(FORBIDDEN)) {
    it(`${folder}/ imports none of ${FORBIDDEN[folder]!.join(', ')}`, () => {
      expect(crossings(folder)).toEqual([]);
    });
  }

  it('sees every kind of import', () => {
    const source = [
      "import { a } from '../backend/a.js';",
      "export { b } from '../backend/b.js';",
      "import '../backend/c.js';",
      "const d = await import('../backend/d.js');",
      "const e = require('../backend/e.js');",
    ].join('\n');
    expect(specifiers(source).sort()).toEqual(
      ['../backend/a.js', '../backend/b.js', '../backend/c.js', '../backend/d.js', '../backend/e.js'].sort(),
    );
  });
});
