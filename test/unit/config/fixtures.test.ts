// Every invalid-policy case has its own fixture file, whose `# expect:` lines are the exact errors.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadPolicyFile, parsePolicy } from '../../../proxy/config/load.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const dir = 'test/fixtures/config';
const fixtures = readdirSync(root + dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

function expectedErrors(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('# expect: '))
    .map((line) => line.slice('# expect: '.length));
}

describe('invalid policy fixtures', () => {
  it('covers every case the issue lists', () => {
    const required = [
      'unknown-key',
      'wrong-type',
      'bad-duration',
      'bad-size',
      'missing-upstream',
      'duplicate-route-name',
      'daily-below-hourly',
      'window-below-shorter',
      'unset-var',
      'yaml-syntax',
      'bad-cidr',
      'bad-on-error',
      'bad-path',
      // One run reports every error of a file, whatever stage finds it.
      'every-stage-in-one-run',
      'several-syntax-errors',
    ];
    expect(fixtures).toEqual(expect.arrayContaining(required.map((n) => `${n}.yaml`)));
  });

  it.each(fixtures)('%s', (name) => {
    const file = `${dir}/${name}`;
    const text = readFileSync(root + file, 'utf8');
    const expected = expectedErrors(text);
    expect(expected.length, 'a fixture states its expected errors').toBeGreaterThan(0);
    // A fixed, empty environment: no fixture may depend on the machine it runs on.
    const result = parsePolicy(text, file, {});
    expect(result.ok ? [] : result.errors).toEqual(expected);
  });

  it('loadPolicyFile labels errors with the path it was given', async () => {
    const file = `${root}${dir}/missing-upstream.yaml`;
    const result = await loadPolicyFile(file, {});
    expect(result.ok).toBe(false);
    if (!result.ok)
      expect(result.errors).toEqual([
        `${file}:9:15: routes[0].upstream: unknown upstream "backnd" (defined: backend)`,
      ]);
  });

  it('reports an unreadable file as one positioned error', async () => {
    const result = await loadPolicyFile(`${root}${dir}/no-such-file.yaml`, {});
    expect(result).toEqual({
      ok: false,
      errors: [`${root}${dir}/no-such-file.yaml:1:1: cannot read policy file (ENOENT)`],
    });
  });
});
