// A standalone entry for the backend (`tsx backend/run.ts --port 0`), for tests and for running
// it without the floodgate CLI; `floodgate backend` calls runBackendCli the same way.
import { parseArgs } from 'node:util';
import { runBackendCli } from './main.js';

const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string' }, role: { type: 'string' } },
  strict: true,
});

try {
  await runBackendCli({
    port: values.port === undefined ? undefined : Number(values.port),
    host: values.host,
    role: values.role,
  });
} catch (err) {
  console.error(`floodgate backend: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
