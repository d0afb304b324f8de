// Starts the report afresh before the first fault file, and prints it, rows in scenario order, once
// the last has finished.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { REPORT_FILE } from './report.js';

const HEADER = '| fault | observed | lost |\n|---|---|---|\n';

export async function setup(): Promise<() => Promise<void>> {
  const started = Date.now();
  await mkdir(dirname(REPORT_FILE), { recursive: true });
  await writeFile(REPORT_FILE, HEADER);
  return async () => {
    const seconds = Math.round((Date.now() - started) / 1000);
    const rows = (await readFile(REPORT_FILE, 'utf8'))
      .split('\n')
      .filter((line) => line.startsWith('| ') && !line.startsWith('| fault |'))
      .sort((a, b) => Number.parseFloat(a.slice(2)) - Number.parseFloat(b.slice(2)));
    const text =
      `# Fault suite, ${new Date(started).toISOString()}\n\n` +
      `Soak: ${process.env.FAULTS_SOAK_SECONDS ?? '300'} s. Run time: ${seconds} s.\n\n` +
      HEADER +
      rows.map((r) => `${r}\n`).join('');
    await writeFile(REPORT_FILE, text);
    console.log(`\n${text}\n(written to ${REPORT_FILE})`);
  };
}
