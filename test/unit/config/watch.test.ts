import { mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type PolicyWatcher, watchPolicyFile } from '../../../proxy/config/watch.js';
import { waitFor } from '../../helpers/wait.js';

type Check = 'changed' | 'unchanged' | 'unreadable';

let dir: string;
let file: string;
const watchers: PolicyWatcher[] = [];

/** A watcher that records what it saw. */
function watchFile(path: string, debounceMs = 50) {
  const seen = { changes: 0, checks: [] as Check[] };
  const w = watchPolicyFile(
    path,
    () => {
      seen.changes++;
    },
    { debounceMs, onCheck: (c) => seen.checks.push(c) },
  );
  watchers.push(w);
  return { seen, watcher: w };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'floodgate-watch-'));
  file = join(dir, 'proxy.yaml');
  writeFileSync(file, 'version: 1\n');
});

afterEach(() => {
  for (const w of watchers.splice(0)) w.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('watchPolicyFile', () => {
  it('a write in place triggers', async () => {
    const { seen } = watchFile(file);
    writeFileSync(file, 'version: 1\nlisten: 127.0.0.1:8081\n');
    await waitFor(() => seen.changes === 1, { what: 'a change' });
  });

  it('a new file renamed over the old one triggers once', async () => {
    const { seen } = watchFile(file);
    // How many editors save: write beside, then rename over (a new inode).
    writeFileSync(join(dir, '.proxy.yaml.swp'), 'version: 1\n# edited\n');
    renameSync(join(dir, '.proxy.yaml.swp'), file);
    await waitFor(() => seen.changes === 1, { what: 'the renamed file' });

    // Later events still arrive (the directory watch survived the inode change); a same-content
    // save after the rename settles as unchanged, so the rename was reported exactly once.
    writeFileSync(file, 'version: 1\n# edited\n');
    await waitFor(() => seen.checks.includes('unchanged'), { what: 'the no-op save to be checked' });
    expect(seen.changes).toBe(1);
  });

  it('a burst of writes is debounced into one change', async () => {
    const { seen } = watchFile(file, 150);
    for (let i = 0; i < 5; i++) writeFileSync(file, `version: 1\n# ${i}\n`);
    await waitFor(() => seen.changes === 1, { what: 'one change' });
    utimesSync(file, new Date(), new Date());
    writeFileSync(file, 'version: 1\n# 4\n');
    await waitFor(() => seen.checks.includes('unchanged'), { what: 'a later no-op check' });
    expect(seen.changes).toBe(1);
  });

  it('a touch or a same-content save does not trigger', async () => {
    const { seen } = watchFile(file);
    utimesSync(file, new Date(), new Date(Date.now() + 5_000));
    writeFileSync(file, 'version: 1\n');
    await waitFor(() => seen.checks.includes('unchanged'), { what: 'the no-op check' });
    expect(seen.changes).toBe(0);
  });

  it('ignores other files in the directory, and a closed watcher reports nothing', async () => {
    const quick = watchFile(file, 10);
    quick.watcher.close();
    const policy = watchFile(file, 10);
    const other = join(dir, 'other.yaml');
    writeFileSync(other, 'a: 1\n');
    // A watcher on the other file, slower than the two above, tells when the events have been delivered.
    const witness = watchFile(other, 100);
    writeFileSync(other, 'a: 2\n');
    writeFileSync(file, 'version: 1\n# changed\n');
    await waitFor(() => witness.seen.changes === 1 && policy.seen.changes === 1, { what: 'both files' });
    expect(policy.seen.checks).toEqual(['changed']);
    expect(quick.seen.changes).toBe(0);
    expect(quick.seen.checks).toEqual([]);
  });
});
