// A Kubernetes ConfigMap volume never writes the policy file in place. The mount looks like
//   proxy.yaml -> ..data/proxy.yaml,  ..data -> ..2026_02_21_10_00_00.1/,  ..2026_02_21_10_00_00.1/proxy.yaml
// and an update writes a new timestamped directory, points a new `..data_tmp` symlink at it, renames
// that over `..data` (one atomic step), then removes the old directory. The file's own path and inode
// never see an event; only the directory does. This replays that sequence and checks the watcher
// (which watches the directory) reports each update once, with the new content readable.
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type PolicyWatcher, watchPolicyFile } from '../../../proxy/config/watch.js';
import { waitFor } from '../../helpers/wait.js';

let mount: string;
let watcher: PolicyWatcher | null = null;
let generation = 0;

/** What the kubelet's atomic writer does for one ConfigMap version. */
function publish(content: string): void {
  const previous = generation > 0 ? `..gen_${generation}` : null;
  generation++;
  const dir = `..gen_${generation}`;
  mkdirSync(join(mount, dir));
  writeFileSync(join(mount, dir, 'proxy.yaml'), content);
  symlinkSync(dir, join(mount, '..data_tmp'));
  renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
  if (previous) rmSync(join(mount, previous), { recursive: true });
}

beforeEach(() => {
  mount = mkdtempSync(join(tmpdir(), 'floodgate-configmap-'));
  generation = 0;
  publish('version: 1\n# v1\n');
  symlinkSync('..data/proxy.yaml', join(mount, 'proxy.yaml'));
});

afterEach(() => {
  watcher?.close();
  watcher = null;
  rmSync(mount, { recursive: true, force: true });
});

describe('watchPolicyFile on a ConfigMap-style mount', () => {
  it('reports each ..data symlink swap once, and reads the new content through the link', async () => {
    const file = join(mount, 'proxy.yaml');
    const seen: string[] = [];
    watcher = watchPolicyFile(
      file,
      () => {
        seen.push(readFileSync(file, 'utf8'));
      },
      { debounceMs: 50 },
    );

    publish('version: 1\n# v2\n');
    await waitFor(() => seen.length === 1, { what: 'the first ConfigMap update' });
    expect(seen[0]).toBe('version: 1\n# v2\n');

    // The watch outlives the swap: the next update arrives as well.
    publish('version: 1\n# v3\n');
    await waitFor(() => seen.length === 2, { what: 'the second ConfigMap update' });
    expect(seen[1]).toBe('version: 1\n# v3\n');
  });

  it('ignores a swap that republishes the same content', async () => {
    const file = join(mount, 'proxy.yaml');
    let changes = 0;
    const checks: string[] = [];
    watcher = watchPolicyFile(
      file,
      () => {
        changes++;
      },
      { debounceMs: 50, onCheck: (c) => checks.push(c) },
    );
    publish('version: 1\n# v1\n');
    await waitFor(() => checks.includes('unchanged'), { what: 'the swap to be checked' });
    expect(changes).toBe(0);
  });
});
