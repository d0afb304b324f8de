import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isJobId, newJobId } from '../../../backend/jobs/ids.js';
import { DataPaths } from '../../../backend/paths.js';

describe('job ids', () => {
  it('mints random URL-safe ids of one shape', () => {
    const ids = new Set(Array.from({ length: 1000 }, newJobId));
    expect(ids.size).toBe(1000);
    for (const id of ids) {
      expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(isJobId(id)).toBe(true);
    }
  });

  it.each([
    '',
    '..',
    '../../etc/passwd',
    '..%2F..%2Fetc',
    'abc',
    'a'.repeat(23),
    'AAAAAAAAAAAAAAAAAAAA/A',
    'AAAAAAAAAAAAAAAAAAAA:A',
    'AAAAAAAAAAAAAAAAAAAA\0A',
    'AAAAAAAAAAAAAAAAAAAA.A',
  ])('rejects %j', (id) => {
    expect(isJobId(id)).toBe(false);
  });

  it('rejects non-strings', () => {
    expect(isJobId(undefined)).toBe(false);
    expect(isJobId(42)).toBe(false);
  });

  it('builds paths only inside DATA_DIR and only from valid ids', () => {
    const paths = new DataPaths('/data');
    const id = newJobId();
    expect(paths.upload(id)).toBe(join('/data', 'uploads', id));
    expect(paths.segment(id, 7)).toBe(join('/data', 'work', id, 'segment-00007.wav'));
    expect(() => paths.upload('../../etc/passwd')).toThrow(/invalid job id/);
    expect(() => paths.workDir('..')).toThrow(/invalid job id/);
  });
});
