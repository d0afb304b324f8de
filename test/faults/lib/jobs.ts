// Talking to the backend's job API (backend/api/server.ts) from fault tests: submit, poll, fetch the result.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { JobStatus } from '../../../backend/jobs/job-store.js';
import { waitFor } from '../../helpers/wait.js';

export { seededRandom } from '../../helpers/prng.js';
export type { JobStatus };

export interface Transcript {
  job_id: string;
  language: string;
  duration: number;
  text: string;
  segments: { start: number; end: number; text: string }[];
}

/** POST /transcribe with `file` as the multipart field "file"; the job id. */
export async function submit(baseUrl: string, file: string, type = 'audio/wav'): Promise<string> {
  const form = new FormData();
  form.append('file', new Blob([await readFile(file)], { type }), basename(file));
  const res = await fetch(`${baseUrl}/transcribe`, { method: 'POST', body: form });
  const body = (await res.json()) as { job_id?: string };
  if (res.status !== 202 || !body.job_id)
    throw new Error(`upload answered ${res.status}: ${JSON.stringify(body)}`);
  return body.job_id;
}

export async function status(baseUrl: string, id: string): Promise<JobStatus> {
  const res = await fetch(`${baseUrl}/status/${id}`);
  if (res.status !== 200) throw new Error(`/status/${id} answered ${res.status}`);
  return (await res.json()) as JobStatus;
}

/** Polls until the job reaches one of `states` (failing fast on an unexpected final state). */
export async function waitForState(
  baseUrl: () => string,
  id: string,
  states: JobStatus['state'][],
  timeoutMs: number,
): Promise<JobStatus> {
  return waitFor(
    async () => {
      const s = await status(baseUrl(), id);
      if (states.includes(s.state)) return s;
      if (s.state === 'failed' || s.state === 'completed')
        throw new Error(`job ${id} ended ${s.state}: ${JSON.stringify(s.error)}`);
      return null;
    },
    { timeoutMs, intervalMs: 100, what: `job ${id} to be ${states.join(' or ')}` },
  );
}

export async function result(baseUrl: string, id: string): Promise<Transcript> {
  const res = await fetch(`${baseUrl}/result/${id}`);
  if (res.status !== 200) throw new Error(`/result/${id} answered ${res.status}`);
  return (await res.json()) as Transcript;
}

/** The transcript without its job id, for comparing two jobs. */
export function content(t: Transcript): Omit<Transcript, 'job_id'> {
  const { job_id: _id, ...rest } = t;
  return rest;
}

export function faultSeed(): number {
  const env = process.env.FAULTS_SEED;
  return env ? Number(env) : Math.floor(Math.random() * 1_000_000);
}
