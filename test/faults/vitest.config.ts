// The fault suite (`npm run test:faults`): real proxies, backends and redis-servers as child processes,
// attacked while they run. Kept out of `npm test`, which must stay quick; its files run two at a time
// (the machine it is sized for has two cores), and a summary table is printed at the end.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../../', import.meta.url)),
    include: ['test/faults/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
    testTimeout: 180_000,
    hookTimeout: 120_000,
    globalSetup: ['test/faults/lib/global-setup.ts'],
  },
});
