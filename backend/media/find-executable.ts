// Where a command would be run from: what spawn does with a name (search PATH) or a path (take it),
// done ahead of time, so readiness can name a missing tool before a job needs it.
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/**
 * The file `command` runs: itself when it holds a path separator (resolved against the working
 * directory), else the first executable regular file of that name on `path`; null when none.
 */
export async function findExecutable(
  command: string,
  path: string | undefined = process.env['PATH'],
): Promise<string | null> {
  if (command === '') return null;
  if (command.includes('/')) return (await isExecutableFile(command)) ? resolve(command) : null;
  for (const dir of (path ?? '').split(delimiter)) {
    // An empty or relative PATH entry would make the answer depend on the working directory.
    if (dir === '' || !isAbsolute(dir)) continue;
    const candidate = join(dir, command);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return null;
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}
