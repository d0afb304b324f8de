// Job ids are minted here and nowhere else: 128 random bits, base64url. Every id that arrives in
// a URL is checked against exactly this shape before it names a Redis key or a file, so `../`,
// `/`, `:` or NUL can never reach the filesystem or another key space.
import { randomBytes } from 'node:crypto';

const JOB_ID = /^[A-Za-z0-9_-]{22}$/;

export function newJobId(): string {
  return randomBytes(16).toString('base64url');
}

export function isJobId(value: unknown): value is string {
  return typeof value === 'string' && JOB_ID.test(value);
}
