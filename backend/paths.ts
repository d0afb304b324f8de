// Every file the backend writes lives under DATA_DIR, at a path built here from a validated job
// id. Nothing else joins user input into a path.
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isJobId } from './jobs/ids.js';

export class DataPaths {
  readonly root: string;
  readonly uploads: string;
  readonly work: string;

  constructor(dataDir: string) {
    this.root = resolve(dataDir);
    this.uploads = join(this.root, 'uploads');
    this.work = join(this.root, 'work');
  }

  async ensure(): Promise<void> {
    await mkdir(this.uploads, { recursive: true });
    await mkdir(this.work, { recursive: true });
  }

  /** The upload while it streams; renamed to upload(id) once complete, so a whole file never looks partial. */
  uploadPart(id: string): string {
    return join(this.uploads, checked(id) + '.part');
  }

  upload(id: string): string {
    return join(this.uploads, checked(id));
  }

  workDir(id: string): string {
    return join(this.work, checked(id));
  }

  /** The normalized 16 kHz mono WAV. */
  normalized(id: string): string {
    return join(this.workDir(id), 'audio.wav');
  }

  segment(id: string, index: number): string {
    return join(this.workDir(id), `segment-${String(index).padStart(5, '0')}.wav`);
  }

  /** Removes the job's upload and work files; missing ones are fine. */
  async removeJobFiles(id: string): Promise<void> {
    await Promise.all([
      rm(this.uploadPart(id), { force: true }),
      rm(this.upload(id), { force: true }),
      rm(this.workDir(id), { recursive: true, force: true }),
    ]);
  }
}

function checked(id: string): string {
  // Defence in depth: routes validate first, but a path is never built from anything else.
  if (!isJobId(id)) throw new Error(`refusing a path for invalid job id ${JSON.stringify(id)}`);
  return id;
}
