// The backend as its own process (`node --import tsx backend/run.ts`): node itself, so a SIGKILL hits
// the backend and not a wrapper. Its JSON log lines are parsed as they arrive, and the port it
// listens on is read from the "backend listening" line.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectRoot } from '../../core/paths.js';
import { waitFor } from './wait.js';

export interface BackendProcessOptions {
  redisUrl: string;
  /** REDIS_PREFIX: the test's own key space. */
  prefix: string;
  dataDir: string;
  /** WHISPER_MODEL. */
  model: string;
  /** A fixed port (a restart that the proxy in front must find again); default 0. */
  port?: number;
  /** More environment (JOB_LEASE, CHECKPOINT_*, TMPDIR, …), over the defaults below. */
  env?: Record<string, string | undefined>;
  /** Bound on the start-up. */
  startTimeoutMs?: number;
}

export interface BackendProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  /** Every stdout line, parsed (non-JSON lines as { msg }). */
  readonly lines: Record<string, unknown>[];
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (SIGKILL by default) unless the process is gone, and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function spawnBackend(o: BackendProcessOptions): Promise<BackendProcess> {
  const root = projectRoot();
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'backend', 'run.ts'), '--port', String(o.port ?? 0)],
    {
      cwd: root,
      env: {
        ...process.env,
        REDIS_URL: o.redisUrl,
        REDIS_PREFIX: o.prefix,
        DATA_DIR: o.dataDir,
        WHISPER_MODEL: o.model,
        WHISPER_FAST_DECODE: '1',
        WHISPER_THREADS: '1',
        LOG_LEVEL: 'info',
        ...o.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      lines.push({ msg: line });
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (!gone) child.kill(signal);
    return exited;
  };
  try {
    const listening = await waitFor(
      () => {
        if (gone) throw new Error(`backend exited early: ${stderr}`);
        return lines.find((l) => l.msg === 'backend listening');
      },
      { timeoutMs: o.startTimeoutMs ?? 30_000, intervalMs: 25, what: 'the backend to listen' },
    );
    const port = listening.port as number;
    return {
      child,
      pid: child.pid!,
      port,
      url: `http://127.0.0.1:${port}`,
      lines,
      stderr: () => stderr,
      exited,
      kill,
    };
  } catch (err) {
    await kill();
    throw err;
  }
}
