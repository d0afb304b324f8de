// Starting the proxy for integration tests: in-process (startProxy, so a test can hand it a ManualClock
// and read its logs) or as a child process (`node --import tsx cli/floodgate.ts proxy`, for signals, memory
// and several processes). Policies are plain objects written as YAML to a temp file; listeners default to
// 127.0.0.1:0, and the real ports are read back from the proxy.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { request } from 'undici';
import { stringify } from 'yaml';
import type { Clock } from '../../core/clock.js';
import { createLogger } from '../../core/logger.js';
import { type RunningProxy, startProxy } from '../../proxy/main.js';
import { waitFor } from './wait.js';

export type PolicyDoc = Record<string, unknown>;

export const PROJECT_ROOT = new URL('../../', import.meta.url).pathname;

/**
 * Fills in loopback listeners on port 0, so every test gets ephemeral ports. FLOODGATE_TEST_WORKERS=N
 * also sets `workers: N` where a policy says nothing of it, to run a suite against clusters (only a
 * child proxy runs one; startTestProxy stays in process).
 */
export function withEphemeralListeners(doc: PolicyDoc): PolicyDoc {
  const admin = (doc.admin as Record<string, unknown> | undefined) ?? {};
  const workers = process.env.FLOODGATE_TEST_WORKERS;
  return {
    listen: '127.0.0.1:0',
    ...(workers ? { workers: Number(workers) } : {}),
    ...doc,
    admin: { listen: '127.0.0.1:0', ...admin },
  };
}

export async function tempDir(name: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `floodgate-${name}-`));
}

/** Writes `doc` as YAML in place (truncate and write: what most programs do). */
export async function writePolicy(file: string, doc: PolicyDoc): Promise<void> {
  await writeFile(file, stringify(withEphemeralListeners(doc)));
}

/** Writes a new file beside `file` and renames it over: how many editors save. */
export async function writePolicyByRename(file: string, doc: PolicyDoc | string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, typeof doc === 'string' ? doc : stringify(withEphemeralListeners(doc)));
  await rename(tmp, file);
}

export interface TestProxy {
  readonly proxy: RunningProxy;
  /** http://127.0.0.1:PORT of the data plane. */
  readonly url: string;
  /** http://127.0.0.1:PORT of the admin listener. */
  readonly admin: string;
  readonly file: string;
  readonly dir: string;
  /** Every log line, parsed. */
  readonly logs: Record<string, unknown>[];
  close(): Promise<void>;
}

export interface TestProxyOptions {
  readonly clock?: Clock;
  readonly watch?: boolean;
  readonly env?: Record<string, string | undefined>;
}

export async function startTestProxy(doc: PolicyDoc, o: TestProxyOptions = {}): Promise<TestProxy> {
  const dir = await tempDir('policy');
  const file = join(dir, 'policy.yaml');
  await writePolicy(file, doc);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const proxy = await startProxy({
    configFile: file,
    logger: createLogger('floodgate-proxy-test', sink),
    clock: o.clock,
    env: o.env ?? process.env,
    watch: o.watch ?? false,
    watchDebounceMs: 50,
  });
  return {
    proxy,
    url: `http://127.0.0.1:${proxy.dataAddress.port}`,
    admin: `http://127.0.0.1:${proxy.adminAddress.port}`,
    file,
    dir,
    logs,
    async close() {
      await proxy.close(2_000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface ChildProxy {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly admin: string;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process has ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL if still running, and wait for the exit. */
  kill(): Promise<void>;
}

/** Runs `floodgate proxy --config FILE` as a child and waits until /healthz answers. */
export async function spawnProxy(
  configFile: string,
  env: Record<string, string | undefined> = {},
): Promise<ChildProxy> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'cli/floodgate.ts', 'proxy', '--config', configFile],
    {
      cwd: PROJECT_ROOT,
      env: { ...process.env, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const kill = async (): Promise<void> => {
    if (!gone) child.kill('SIGKILL');
    await exited;
  };

  try {
    // The start-up log line names the ports the OS picked.
    const started = await waitFor(
      () => {
        if (gone) throw new Error(`proxy exited early:\n${out}`);
        for (const line of out.split('\n')) {
          if (!line.includes('"proxy started"')) continue;
          const l = JSON.parse(line) as { listen: { port: number }; admin: { port: number } };
          return { data: l.listen.port, admin: l.admin.port };
        }
        return null;
      },
      { timeoutMs: 30_000, intervalMs: 50, what: 'the proxy child to start' },
    );
    const admin = `http://127.0.0.1:${started.admin}`;
    await waitFor(
      async () => {
        const r = await request(`${admin}/healthz`);
        await r.body.dump();
        return r.statusCode === 200;
      },
      { timeoutMs: 10_000, what: 'the proxy child /healthz' },
    );
    return {
      child,
      pid: child.pid!,
      url: `http://127.0.0.1:${started.data}`,
      admin,
      output: () => out,
      exited,
      kill,
    };
  } catch (err) {
    await kill();
    throw err;
  }
}

/** Runs `floodgate ARGS...` to completion. */
export async function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/floodgate.ts', ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}

/** A GET (or other method) whose JSON body is parsed. */
export async function getJson<T = Record<string, unknown>>(
  url: string,
  method: 'GET' | 'POST' = 'GET',
): Promise<{ status: number; body: T }> {
  const r = await request(url, { method });
  return { status: r.statusCode, body: (await r.body.json()) as T };
}

/** One sample of a Prometheus metric from /metrics text; 0 when the series is absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const open = line.indexOf('{');
    const labelText = open === -1 || open > name.length ? '' : line.slice(open + 1, line.indexOf('}'));
    const have = labelText === '' ? [] : labelText.split(',');
    if (wanted.every((w) => have.includes(w)) && have.length === wanted.length) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return 0;
}

export async function metrics(admin: string): Promise<string> {
  const r = await request(`${admin}/metrics`);
  return r.body.text();
}
