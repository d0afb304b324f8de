// Notices when the policy file changes, for hot reload. It watches the file's directory rather than the
// file: editors that save by writing a new file and renaming it over the old one replace the inode, and a
// watch on the old inode would go quiet. Bursts of events are debounced, and a change is reported only
// when the content differs from what was last seen (touches and same-content saves are ignored).
import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

export interface WatchOptions {
  /** Quiet time after the last event before the file is read. */
  readonly debounceMs?: number;
  /** Each settled check: the content changed (onChange was called), did not, or could not be read. */
  readonly onCheck?: (result: 'changed' | 'unchanged' | 'unreadable') => void;
  /** A watcher failure, or onChange throwing or rejecting. Without it, errors are swallowed. */
  readonly onError?: (err: unknown) => void;
}

export interface PolicyWatcher {
  close(): void;
}

export function watchPolicyFile(
  file: string,
  onChange: () => void | Promise<void>,
  { debounceMs = 200, onCheck, onError }: WatchOptions = {},
): PolicyWatcher {
  const name = basename(file);
  let lastHash = hashOf(readOrNull(file));
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  // Checks run one after another, so two reads can never race to update lastHash.
  let queue: Promise<void> = Promise.resolve();

  const check = async (): Promise<void> => {
    let text: Buffer;
    try {
      text = await readFile(file);
    } catch {
      // Mid-rename or deleted: the event that completes the save will come and check again.
      if (!closed) onCheck?.('unreadable');
      return;
    }
    if (closed) return;
    const hash = hashOf(text);
    if (hash === lastHash) {
      onCheck?.('unchanged');
      return;
    }
    lastHash = hash;
    try {
      await onChange();
    } catch (err) {
      onError?.(err);
    }
    onCheck?.('changed');
  };

  const watcher: FSWatcher = watch(dirname(file), { persistent: false }, (_event, filename) => {
    // Kubernetes ConfigMap volumes swap a "..data" symlink instead of touching the file itself;
    // a platform that gives no filename could mean anything.
    if (filename !== null && filename !== name && !filename.startsWith('..')) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      queue = queue.then(check);
    }, debounceMs);
    timer.unref();
  });
  watcher.on('error', (err) => onError?.(err));

  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      watcher.close();
    },
  };
}

function readOrNull(file: string): Buffer | null {
  try {
    return readFileSync(file);
  } catch {
    return null;
  }
}

function hashOf(content: Buffer | null): string | null {
  return content === null ? null : createHash('sha256').update(content).digest('hex');
}
