// The fault report: each scenario appends one row (fault | observed | lost) to a Markdown table
// under test/artifacts/, and the global teardown prints it. Rows are single appends, so files that
// run in parallel processes never interleave within a row.
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { projectRoot } from '../../../core/paths.js';

export const REPORT_FILE = join(projectRoot(), 'test', 'artifacts', 'faults-report.md');

export interface FaultRow {
  /** The scenario: what was done to the system. */
  fault: string;
  /** What the system did, with the numbers that show it. */
  observed: string;
  /** What was lost: requests without a right answer, jobs, segments, files. "nothing" is the goal. */
  lost: string;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

export async function recordFault(row: FaultRow): Promise<void> {
  await appendFile(REPORT_FILE, `| ${cell(row.fault)} | ${cell(row.observed)} | ${cell(row.lost)} |\n`);
}
