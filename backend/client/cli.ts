// `floodgate transcribe AUDIO [--url URL] [--format F] [-o OUT] [--job ID]`: the progress
// bar (stage, percent, ETA) on stderr, waits and retries said out loud, the transcript to OUT or
// stdout. Ctrl-C leaves the job running on the server and prints how to pick it up again.
import { writeFile } from 'node:fs/promises';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { EtaEstimator } from './eta.js';
import {
  isClientError,
  type JobStatus,
  RESULT_FORMATS,
  type ResultFormat,
  type RetryNotice,
} from './http.js';
import { isInterrupted, transcribe } from './transcribe.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface TranscribeCliOptions {
  url?: string;
  format?: string;
  output?: string;
  job?: string;
  /** Tests: poll faster than once a second. */
  pollIntervalMs?: number;
}

const PREFIX = 'floodgate transcribe: ';

/** Exit status: 0 done, 1 failed, 2 usage, 130 interrupted (the job keeps running). */
export async function runTranscribe(audio: string | undefined, o: TranscribeCliOptions): Promise<number> {
  const url = o.url ?? DEFAULT_URL;
  const format = (o.format ?? 'json') as ResultFormat;
  if (!RESULT_FORMATS.includes(format)) {
    process.stderr.write(`${PREFIX}--format must be one of ${RESULT_FORMATS.join(', ')}\n`);
    return 2;
  }
  if (!audio && !o.job) {
    process.stderr.write(`${PREFIX}give an audio file, or --job ID to follow a job already submitted\n`);
    return 2;
  }

  const view = progressView(Boolean(process.stderr.isTTY));
  const notices = new NoticeReporter();
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  let jobId = o.job ?? null;
  try {
    const t = await transcribe({
      url,
      audio,
      jobId: o.job,
      format,
      signal: controller.signal,
      pollIntervalMs: o.pollIntervalMs,
      onSubmitted: (job) => {
        jobId = job.job_id;
        view.note(`uploaded ${audio}: job ${job.job_id}`);
      },
      onStatus: (s) => {
        const line = notices.next(s);
        if (line !== null) view.note(line);
        view.update(s);
      },
      onRetry: (n) => view.note(retryLine(n)),
    });
    view.stop();
    const body = endWithNewline(t.body);
    if (o.output) {
      await writeFile(o.output, body);
      process.stderr.write(`${PREFIX}wrote ${o.output} (${format}, job ${t.jobId})\n`);
    } else {
      await new Promise<void>((resolve, reject) =>
        process.stdout.write(body, (err) => (err ? reject(err) : resolve())),
      );
    }
    return 0;
  } catch (err) {
    view.stop();
    if (isInterrupted(err)) {
      const id = err.jobId ?? jobId;
      if (id === null) {
        process.stderr.write(`${PREFIX}interrupted during the upload; no job was started\n`);
      } else {
        const again = [`floodgate transcribe --job ${id}`, `--url ${url}`, `--format ${format}`];
        if (o.output) again.push(`-o ${o.output}`);
        process.stderr.write(
          `${PREFIX}interrupted; job ${id} keeps running on the server.\n` +
            `${PREFIX}resume with: ${again.join(' ')}\n`,
        );
      }
      return 130;
    }
    const message = isClientError(err) || err instanceof Error ? err.message : String(err);
    const code = (err as { code?: string }).code;
    if (isClientError(err) && err.code === 'refused') {
      // Nothing has answered: no job can have started, and the likely fix is one of two.
      process.stderr.write(
        `${PREFIX}${message}; is the proxy running? Start it with \`npm start\`, or pass --url\n`,
      );
      return 1;
    }
    process.stderr.write(`${PREFIX}${code === 'ENOENT' ? `cannot read ${audio}` : message}\n`);
    if (jobId !== null && !(isClientError(err) && (err.code === 'job_failed' || err.code === 'not_found'))) {
      process.stderr.write(`${PREFIX}the job may still be running: --job ${jobId} picks it up\n`);
    }
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/**
 * What the server says about a waiting job (GET /status's `notice`), as lines to print: a notice
 * once when it appears or changes, not at every poll, and one line when it clears. The client
 * keeps waiting: the backend starts the job by itself once the missing part is in place.
 */
export class NoticeReporter {
  private shown: string | null = null;

  next(s: JobStatus): string | null {
    const message = s.notice?.message ?? null;
    if (message === this.shown) return null;
    const was = this.shown;
    this.shown = message;
    if (message !== null) {
      return (
        `the server cannot start job ${s.job_id} yet: ${message}. ` +
        'It waits in the queue and starts once that is fixed (Ctrl-C leaves it queued)'
      );
    }
    return was === null ? null : 'the server can run the job now';
  }
}

/** A transcript on a terminal or in a file ends its last line, whatever the format. */
export function endWithNewline(body: Buffer): Buffer {
  return body.length === 0 || body[body.length - 1] === 0x0a
    ? body
    : Buffer.concat([body, Buffer.from('\n')]);
}

function retryLine(n: RetryNotice): string {
  const why =
    n.status === 429
      ? `rate limited (429: ${n.reason})`
      : n.status === 503
        ? `service unavailable (503: ${n.reason})`
        : `connection failed (${n.reason})`;
  return `${why} on ${n.request}; waiting ${formatDuration(n.waitMs)} before retrying (attempt ${n.attempt})`;
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

interface ProgressView {
  update(s: JobStatus): void;
  /** A line of its own, above the bar. */
  note(line: string): void;
  stop(): void;
}

function detail(s: JobStatus): string {
  const parts: string[] = [s.notice ? `${s.state}: engine not ready` : s.state];
  if (s.segments_total > 0) parts.push(`${s.segments_done}/${s.segments_total} segments`);
  if (s.resumed) parts.push('resumed');
  return parts.join(', ');
}

/** A bar on a terminal; elsewhere (a pipe, CI) one line per stage or per 10 %. */
function progressView(tty: boolean): ProgressView {
  const eta = new EtaEstimator();
  const etaText = (s: JobStatus): string => {
    const ms = eta.observe(s);
    return ms === null ? '–' : formatDuration(ms);
  };
  if (!tty) {
    let last = '';
    return {
      update(s) {
        const key = `${s.stage}|${Math.floor(s.progress * 10)}|${s.state}`;
        const shownEta = etaText(s);
        if (key === last) return;
        last = key;
        process.stderr.write(
          `${PREFIX}${s.stage} ${Math.round(s.progress * 100)}% (${detail(s)}), ETA ${shownEta}\n`,
        );
      },
      note: (line) => process.stderr.write(PREFIX + line + '\n'),
      stop() {},
    };
  }
  const multi = new MultiBar(
    {
      format: '{stage} [{bar}] {percentage}% | ETA {remaining} | {detail}',
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
    },
    Presets.shades_classic,
  );
  let bar: SingleBar | null = null;
  let stopped = false;
  return {
    update(s) {
      const payload = { stage: s.stage.padEnd(10), remaining: etaText(s), detail: detail(s) };
      const value = Math.round(s.progress * 100);
      if (bar === null) bar = multi.create(100, value, payload);
      else bar.update(value, payload);
    },
    // Until the bar exists, nothing would flush multi.log's buffer.
    note: (line) =>
      bar === null ? process.stderr.write(PREFIX + line + '\n') : multi.log(PREFIX + line + '\n'),
    stop() {
      if (stopped || bar === null) return;
      stopped = true;
      multi.stop();
    },
  };
}
