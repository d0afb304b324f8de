// Runs an external program (whisper.cpp, ffmpeg) the one safe way: an argument array and no shell,
// a time budget, an AbortSignal that kills it at once, stdout captured, and the tail of stderr kept
// so a failure explains itself.
import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { FloodgateError, hasBrand } from './errors.js';

export type ProcessErrorCode =
  /** The binary is missing or cannot be started. */
  | 'engine_unavailable'
  /** The process exited non-zero, wrote too much, or was killed by someone else. */
  | 'process_failed'
  /** The process exceeded its time budget and was killed. */
  | 'timeout'
  /** The caller's AbortSignal fired; the process was killed. */
  | 'aborted';

export interface ProcessErrorDetails {
  /** The last few KB of the process's stderr, for logs and job errors. */
  stderrTail?: string;
  exitCode?: number | null;
  signal?: NodeJS.Signals | null;
  command?: string;
  cause?: unknown;
}

/**
 * Why runProcess rejected; callers branch on `code`. A caller with codes of its own (the media layer)
 * extends it under its own brand.
 */
export class ProcessError<Code extends string = ProcessErrorCode> extends FloodgateError<Code> {
  readonly stderrTail: string | undefined;
  readonly exitCode: number | null | undefined;
  readonly signal: NodeJS.Signals | null | undefined;
  readonly command: string | undefined;

  constructor(code: Code, message: string, details: ProcessErrorDetails = {}, brand = 'ProcessError') {
    super(brand, code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.stderrTail = details.stderrTail;
    this.exitCode = details.exitCode;
    this.signal = details.signal;
    this.command = details.command;
  }
}

/** True for a ProcessError from any copy of this module. */
export function isProcessError(err: unknown, code?: ProcessErrorCode): err is ProcessError {
  return hasBrand(err, 'ProcessError') && (code === undefined || (err as ProcessError).code === code);
}

export interface RunOptions {
  /** Kill the process (SIGKILL) and reject with `timeout` after this long. */
  timeoutMs?: number;
  /** Kill the process (SIGKILL) and reject with `aborted` when this fires. */
  signal?: AbortSignal;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** How much of stderr's end to keep; default 4 KiB. */
  stderrTailBytes?: number;
  /** Kill the process and fail when stdout grows past this; default 16 MiB. */
  maxStdoutBytes?: number;
  /**
   * Called with every line of stderr, for tools that report results there (ffmpeg's filters),
   * which the bounded tail would drop.
   */
  onStderrLine?: (line: string) => void;
}

export interface RunResult {
  stdout: string;
  stderrTail: string;
  durationMs: number;
}

const DEFAULT_STDERR_TAIL = 4096;
const DEFAULT_MAX_STDOUT = 16 * 1024 * 1024;

/** Keeps only the last `limit` bytes written to it, in O(limit) memory. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - this.chunks[0]!.length >= this.limit) {
      this.size -= this.chunks.shift()!.length;
    }
  }

  toString(): string {
    const all = Buffer.concat(this.chunks);
    // Cutting mid-character would leave U+FFFD at the start; that is fine for a diagnostic tail.
    return all.subarray(Math.max(0, all.length - this.limit)).toString('utf8');
  }
}

/**
 * Runs `file` with `args` (never through a shell, so no argument is ever interpreted) and resolves
 * with its stdout when it exits 0. Rejects with a ProcessError: `engine_unavailable` when it cannot
 * start, `process_failed` on a non-zero exit, `timeout`, or `aborted`. A rejection for timeout or
 * abort comes only after the process has exited, so the caller may delete its files right away.
 */
export function runProcess(
  file: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const { signal, timeoutMs, cwd, env } = options;
  const tailLimit = options.stderrTailBytes ?? DEFAULT_STDERR_TAIL;
  const maxStdout = options.maxStdoutBytes ?? DEFAULT_MAX_STDOUT;
  const command = basename(file);

  if (signal?.aborted) {
    return Promise.reject(
      new ProcessError('aborted', `${command} not started: aborted`, { command, cause: signal.reason }),
    );
  }

  return new Promise<RunResult>((resolve, reject) => {
    const started = performance.now();
    // A process group of its own lets one kill reach anything the tool forks, not just the tool.
    // It also keeps a terminal's Ctrl-C from reaching it directly: shutdown aborts it through us.
    const child = spawn(file, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    const stderr = new TailBuffer(tailLimit);
    let killedFor: 'timeout' | 'aborted' | 'stdout' | null = null;
    let timer: NodeJS.Timeout | undefined;

    const kill = (reason: 'timeout' | 'aborted' | 'stdout'): void => {
      if (killedFor !== null || child.exitCode !== null || child.signalCode !== null) return;
      killedFor = reason;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL'); // the group may already be gone; make sure the child is
      }
    };
    const onAbort = (): void => kill('aborted');
    const cleanup = (): void => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };

    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > maxStdout) kill('stdout');
      else stdout.push(chunk);
    });
    const lines = options.onStderrLine === undefined ? null : stderrLines(options.onStderrLine);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr.push(chunk);
      lines?.push(chunk);
    });

    // `on`, not `once`: a second 'error' (a failed kill) must not become an uncaught exception.
    child.on('error', (err: NodeJS.ErrnoException) => {
      cleanup();
      // 'error' without a pid means spawn itself failed (ENOENT, EACCES): the engine is not there.
      if (child.pid === undefined) {
        reject(
          new ProcessError('engine_unavailable', `cannot run ${file}: ${err.code ?? err.message}`, {
            command,
            cause: err,
          }),
        );
      }
    });

    // 'close' (not 'exit') so every byte of stdout and stderr has been read.
    child.once('close', (exitCode, exitSignal) => {
      cleanup();
      lines?.end();
      const stderrTail = stderr.toString();
      const details = { command, stderrTail, exitCode, signal: exitSignal };
      if (child.pid === undefined) return; // already rejected in 'error'
      if (killedFor === 'aborted') {
        reject(new ProcessError('aborted', `${command} aborted`, { ...details, cause: signal?.reason }));
      } else if (killedFor === 'timeout') {
        reject(new ProcessError('timeout', `${command} timed out after ${timeoutMs} ms`, details));
      } else if (killedFor === 'stdout') {
        reject(new ProcessError('process_failed', `${command} wrote more than ${maxStdout} bytes`, details));
      } else if (exitCode !== 0) {
        const how = exitSignal ? `was killed by ${exitSignal}` : `exited with code ${exitCode}`;
        reject(new ProcessError('process_failed', `${command} ${how}: ${lastLine(stderrTail)}`, details));
      } else {
        resolve({
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderrTail,
          durationMs: performance.now() - started,
        });
      }
    });

    if (timeoutMs !== undefined) timer = setTimeout(() => kill('timeout'), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Splits a byte stream into lines (LF or CRLF) for `onLine`; `end` flushes an unterminated last line. */
function stderrLines(onLine: (line: string) => void): { push(chunk: Buffer): void; end(): void } {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  const emit = (text: string): void => {
    const parts = (pending + text).split(/\r?\n/);
    pending = parts.pop() ?? '';
    for (const line of parts) onLine(line);
  };
  return {
    push: (chunk) => emit(decoder.write(chunk)),
    end: () => {
      emit(decoder.end());
      if (pending !== '') onLine(pending);
      pending = '';
    },
  };
}

/** The last non-empty line of a tool's output: usually the one that says what went wrong. */
export function lastLine(text: string): string {
  const lines = text.trimEnd().split(/\r?\n/);
  return lines[lines.length - 1] ?? '';
}
