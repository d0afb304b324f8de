// The Lua scripts are found from sources (vitest, tsx) and, the same way, from dist/ (compiled).
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { projectPath, projectRoot } from '../../../core/paths.js';

describe('projectRoot', () => {
  it('is the directory that holds package.json', () => {
    expect(existsSync(projectPath('package.json'))).toBe(true);
    expect(projectPath('a', 'b')).toBe(`${projectRoot()}/a/b`);
  });

  it('holds both rate limit scripts', () => {
    for (const name of ['sliding-log', 'sliding-counter']) {
      expect(existsSync(projectPath('proxy', 'ratelimit', 'lua', `${name}.lua`))).toBe(true);
    }
  });
});
