// The child processes of the macro benchmark, and the guarantee that none outlives it: every child is
// registered here and killed when the benchmark ends, fails, or is interrupted. Only loopback addresses
// are used. Cores are assigned with taskset when it exists (Linux); elsewhere children run unpinned.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectPath } from '../../core/paths.js';
import type { LoadJob, LoadReply, LoadResult } from './load.js';

const children = new Set<ChildProcess>();
let workDir: string | null = null;

/** A private temp directory for configs and logs, removed on exit. */
export function tempDir(): string {
  workDir ??= mkdtempSync(join(tmpdir(), 'floodgate-bench-'));
  return workDir;
}

function killAll(signal: NodeJS.Signals): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill(signal);
      } catch {
        // already gone
      }
    }
  }
}

let installed = false;
let shuttingDown = false;

const hooks: (() => Promise<unknown>)[] = [];
/** Work to do on an interrupted run too (e.g. deleting the run's Redis keys); bounded to a second. */
export function onShutdown(hook: () => Promise<unknown>): void {
  hooks.push(hook);
}

/** SIGTERM to every child, SIGKILL to those still there after `graceMs`, the hooks, then exit. */
async function shutdown(code: number, graceMs = 3_000): Promise<never> {
  if (!shuttingDown) {
    shuttingDown = true;
    await Promise.race([stopAll(graceMs), new Promise((r) => setTimeout(r, graceMs + 500))]);
    const bounded = hooks.map((h) =>
      Promise.race([h().catch(() => {}), new Promise((r) => setTimeout(r, 1_000))]),
    );
    await Promise.all(bounded);
  }
  process.exit(code);
}

/**
 * Kills every child on exit, on SIGINT/SIGTERM/SIGHUP, and on an uncaught error: politely first
 * (SIGTERM lets nginx reap its worker and a profiled proxy write its profile), then SIGKILL. Should this
 * process itself be killed outright, children get SIGTERM from the kernel (setpriv --pdeathsig, where
 * available), and the upstream and load generator also leave when their stdin or IPC channel closes.
 * Idempotent.
 */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on('exit', () => {
    killAll('SIGKILL');
    if (workDir !== null && !process.env.BENCH_KEEP_TMP) rmSync(workDir, { recursive: true, force: true });
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping children\n`);
      void shutdown(130);
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`bench: ${err.stack ?? String(err)}\n`);
    void shutdown(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    void shutdown(1);
  });
}

/** Stops one child: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(c: ChildProcess, graceMs = 2_000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export async function stopAll(graceMs = 2_000): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c, graceMs)));
}

/**
 * Where a child may run: one core, a taskset core list such as "0-3" (its threads spread over those
 * cores), or null for anywhere.
 */
export type Cores = number | string | null;

let tasksetPath: string | null | undefined;
/** taskset's path, or null where it is missing (then nothing is pinned). */
export function taskset(): string | null {
  if (tasksetPath === undefined) {
    // Both cores the benchmark uses must be ours to pin to (a 1-core machine or a cpuset may forbid one).
    const ok = (core: string) => spawnSync('taskset', ['-c', core, 'true'], { stdio: 'ignore' }).status === 0;
    tasksetPath = ok('0') && ok('1') ? 'taskset' : null;
  }
  return tasksetPath;
}

let setprivWorks: boolean | undefined;
/** Whether `setpriv --pdeathsig` works here (util-linux, Linux only). */
function setpriv(): boolean {
  setprivWorks ??=
    spawnSync('setpriv', ['--pdeathsig', 'TERM', '--', 'true'], { stdio: 'ignore' }).status === 0;
  return setprivWorks;
}

/**
 * The command line that runs `cmd` on `core` (null: anywhere), and that gets SIGTERM should this
 * process die without cleaning up.
 */
function pinned(core: Cores, cmd: string, args: readonly string[]): [string, string[]] {
  const ts = core === null ? null : taskset();
  const line = ts === null ? [cmd, ...args] : [ts, '-c', String(core), cmd, ...args];
  if (setpriv()) line.unshift('setpriv', '--pdeathsig', 'TERM', '--');
  return [line[0]!, line.slice(1)];
}

function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** `node --import tsx FILE`, for bench children written in TypeScript. */
function tsNode(file: string): [string, string[]] {
  return [process.execPath, ['--import', 'tsx', projectPath(...file.split('/'))]];
}

/** A free loopback port (for nginx, which cannot report the port it got for :0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor<T>(
  what: string,
  probe: () => T | null,
  timeoutMs: number,
  child?: ChildProcess,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== null) return v;
    if (child && (child.exitCode !== null || child.signalCode !== null))
      throw new Error(`${what}: exited (${child.exitCode ?? child.signalCode}) before it was ready`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until something accepts TCP connections on 127.0.0.1:port. */
async function waitForPort(
  what: string,
  port: number,
  timeoutMs: number,
  child: ChildProcess,
): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${what}: exited before it listened`);
    if (Date.now() > deadline) throw new Error(`${what}: no listener on ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface Upstream {
  readonly port: number;
  readonly child: ChildProcess;
}

/**
 * Runs a server of the benchmark's own (upstream.ts through tsx, the compiled bare forwarder), which
 * listens on a free port and prints {"port":N} as its first line. Its stdin is a pipe it watches: it
 * leaves when we do.
 */
async function startServerScript(
  [node, script]: [string, string[]],
  extraArgs: readonly string[],
  core: Cores,
): Promise<{ port: number; child: ChildProcess }> {
  const file = script[script.length - 1]!;
  const [cmd, args] = pinned(core, node, [...script, ...extraArgs]);
  const child = track(spawn(cmd, args, { cwd: projectPath(), stdio: ['pipe', 'pipe', 'inherit'] }));
  let line = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    line += d;
  });
  const port = await waitFor(
    file,
    () => {
      const nl = line.indexOf('\n');
      return nl === -1 ? null : (JSON.parse(line.slice(0, nl)) as { port: number }).port;
    },
    15_000,
    child,
  );
  return { port, child };
}

export function startUpstream(core: Cores): Promise<Upstream> {
  return startServerScript(tsNode('bench/macro/upstream.ts'), [], core);
}

/** The compiled bare forwarder (ensureBuilt): the comparison with floodgate is compiled against compiled. */
const BARE_FORWARDER = ['dist', 'bench', 'macro', 'bare-forwarder.js'] as const;

/** The bare forwarder (bare-forwarder.ts) in front of the upstream: the floor of a Node proxy. */
export async function startBareForwarder(upstreamPort: number, core: Cores): Promise<Target> {
  const { port, child } = await startServerScript(
    [process.execPath, [projectPath(...BARE_FORWARDER)]],
    [`http://127.0.0.1:${upstreamPort}`],
    core,
  );
  return { name: 'bare', url: `http://127.0.0.1:${port}`, adminUrl: null, child, logFile: '' };
}

export interface LoadGenerator {
  run(job: Omit<LoadJob, 'id'>): Promise<LoadResult>;
  readonly child: ChildProcess;
}

export function startLoadGenerator(core: Cores): LoadGenerator {
  const [cmd, args] = pinned(core, ...tsNode('bench/macro/load.ts'));
  const child = track(
    spawn(cmd, args, { cwd: projectPath(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
  );
  const pending = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void }>();
  let next = 1;
  child.on('message', (m: LoadReply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.result);
    else p.reject(new Error(`load generator: ${m.error}`));
  });
  child.once('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`load generator exited (${code ?? signal})`));
    pending.clear();
  });
  return {
    child,
    run(job) {
      const id = next++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ ...job, id } satisfies LoadJob);
      });
    },
  };
}

/** A system under test: a process (and its children) whose CPU time is measured around each run. */
export interface Target {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
  /** The admin listener (floodgate only), for /metrics. */
  readonly adminUrl: string | null;
  readonly logFile: string;
}

export interface ProxyTargetOptions {
  readonly name: string;
  readonly policyYaml: string;
  readonly env?: Record<string, string>;
  readonly core: Cores;
  /** Extra node flags (e.g. --cpu-prof). */
  readonly nodeFlags?: readonly string[];
  /** The compiled CLI to run (default: this checkout's dist/cli/floodgate.js), e.g. another build to compare. */
  readonly cli?: string;
}

/** Starts `node dist/cli/floodgate.js proxy --config FILE`, on port 0; reads its addresses from its log. */
export async function startFloodgate(o: ProxyTargetOptions): Promise<Target> {
  const dir = tempDir();
  const config = join(dir, `${o.name}.yaml`);
  const logFile = join(dir, `${o.name}.log`);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(config, o.policyYaml);
  const out = openSync(logFile, 'w');
  const [cmd, args] = pinned(o.core, process.execPath, [
    ...(o.nodeFlags ?? []),
    o.cli ?? projectPath('dist', 'cli', 'floodgate.js'),
    'proxy',
    '--config',
    config,
  ]);
  const child = track(
    spawn(cmd, args, { cwd: dir, stdio: ['ignore', out, out], env: { ...process.env, ...o.env } }),
  );
  closeSync(out);
  const started = await waitFor(
    `proxy ${o.name}`,
    () => {
      const text = readFileSync(logFile, 'utf8');
      for (const line of text.split('\n')) {
        if (!line.includes('"proxy started"')) continue;
        return JSON.parse(line) as { listen: { port: number }; admin: { port: number } };
      }
      return null;
    },
    20_000,
    child,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- ${logFile} ---\n${tail(logFile)}`);
  });
  return {
    name: o.name,
    url: `http://127.0.0.1:${started.listen.port}`,
    adminUrl: `http://127.0.0.1:${started.admin.port}`,
    child,
    logFile,
  };
}

function tail(file: string, bytes = 2_000): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '(no log)';
  }
}

/** nginx's path ($NGINX when set, e.g. a custom build), or null when it is not installed. */
export function findNginx(): string | null {
  const chosen = process.env.NGINX;
  if (chosen !== undefined) return chosen !== '' && existsSync(chosen) ? chosen : null;
  for (const p of [
    '/usr/sbin/nginx',
    '/usr/local/sbin/nginx',
    '/usr/local/nginx/sbin/nginx',
    '/usr/bin/nginx',
  ]) {
    if (existsSync(p)) return p;
  }
  const r = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : null;
}

export interface NginxOptions {
  /** Distinguishes several nginx processes in one run (their directories and pid files). */
  readonly name?: string;
  readonly core: Cores;
  /** worker_processes: 1, a single-threaded event loop like node, unless a multi-core run asks more. */
  readonly workers?: number;
}

/**
 * nginx as the outside reference: ONE worker process (a single-threaded event loop, like node) unless
 * told otherwise, an upstream block with keepalive connections, HTTP/1.1 to the upstream, access log
 * off, and the same X-Forwarded-* / X-Request-Id headers floodgate adds, so both do comparable work
 * per request.
 */
export function startNginx(binary: string, upstreamPort: number, o: NginxOptions): Promise<Target> {
  return runNginx(
    binary,
    o,
    `upstream app {
    server 127.0.0.1:${upstreamPort};
    keepalive 256;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
  }`,
    `proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Request-Id $request_id;`,
  );
}

/**
 * nginx answering upstream.ts's body itself: an upstream for the multi-core run, where one node
 * upstream process would be the limit long before four proxy workers are.
 */
export function startStaticNginx(binary: string, o: NginxOptions): Promise<Target> {
  return runNginx(
    binary,
    o,
    '',
    `default_type application/json;
      return 200 '{"ok":true,"from":"upstream"}';`,
  );
}

async function runNginx(binary: string, o: NginxOptions, http: string, location: string): Promise<Target> {
  const name = o.name ?? 'nginx';
  const dir = join(tempDir(), name);
  const { mkdirSync, writeFileSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = `# generated by bench/macro for one run
worker_processes ${o.workers ?? 1};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
${process.getuid?.() === 0 ? 'user root;' : ''}
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  ${http}
  server {
    listen 127.0.0.1:${port};
    location / {
      ${location}
    }
  }
}
`;
  const confFile = join(dir, 'nginx.conf');
  writeFileSync(confFile, conf);
  const logFile = join(dir, 'error.log');
  const [cmd, args] = pinned(o.core, binary, ['-p', dir, '-c', confFile]);
  const child = track(spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  await waitForPort(name, port, 10_000, child).catch((err: Error) => {
    throw new Error(`${err.message}\n${stderr}${tail(logFile)}`);
  });
  return { name, url: `http://127.0.0.1:${port}`, adminUrl: null, child, logFile };
}

let clockTicks: number | null = null;
const schedstat = existsSync('/proc/self/schedstat');

/**
 * CPU seconds one process has used: the sum of its threads' run time from /proc/PID/task/TID/schedstat,
 * in nanoseconds. /proc/PID/stat counts in clock ticks (10 ms), too coarse for a few hundred
 * milliseconds of CPU at a fixed rate; it is the fallback where schedstat is missing. Threads that
 * exited are not in schedstat: the benchmark's processes keep theirs for their whole life.
 */
function processCpuSeconds(p: number): number {
  if (schedstat) {
    let ns = 0;
    for (const task of readdirSync(`/proc/${p}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${p}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // the thread ended meanwhile
      }
    }
    return ns / 1e9;
  }
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / clockTicks; // utime, stime
}

/** CPU seconds used so far by `pid` and its descendants (Linux /proc; null elsewhere). */
export function cpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined || !existsSync(`/proc/${pid}/stat`)) return null;
  let seconds = 0;
  const visit = (p: number, depth: number): void => {
    try {
      seconds += processCpuSeconds(p);
      if (depth > 3) return;
      for (const task of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim();
        if (kids) for (const k of kids.split(' ')) visit(Number(k), depth + 1);
      }
    } catch {
      // the process ended meanwhile
    }
  };
  visit(pid, 0);
  return seconds;
}

/** Per-core [busy, total] jiffies so far, from /proc/stat (null elsewhere): busy is all but idle and iowait. */
export function coreTimes(): [number, number][] | null {
  if (!existsSync('/proc/stat')) return null;
  const out: [number, number][] = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    if (!/^cpu\d/.test(line)) continue;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    out.push([total - f[3]! - f[4]!, total]);
  }
  return out;
}

/** Share of each core that was busy between two coreTimes() readings (any process, ours or not). */
export function coreBusy(a: [number, number][] | null, b: [number, number][] | null): number[] {
  if (a === null || b === null) return [];
  return b.map(([busy, total], i) => (busy - a[i]![0]) / Math.max(1, total - a[i]![1]));
}

/**
 * Builds dist/ (npx tsc -p tsconfig.json) when any source the proxy runs (cli/, core/, proxy/) is newer
 * than its compiled file, so the benchmark runs what production runs. Returns what it did, for the log.
 */
export function ensureBuilt(): string {
  const stale: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(projectPath(dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const out = projectPath('dist', rel.replace(/\.ts$/, '.js'));
        if (!existsSync(out) || statSync(out).mtimeMs < statSync(projectPath(rel)).mtimeMs) stale.push(rel);
      }
    }
  };
  for (const dir of ['cli', 'core', 'proxy']) walk(dir);
  for (const rel of ['bench/macro/bare-forwarder.ts', 'bench/lib/child-server.ts']) {
    const out = projectPath('dist', rel.replace(/\.ts$/, '.js'));
    if (!existsSync(out) || statSync(out).mtimeMs < statSync(projectPath(rel)).mtimeMs) stale.push(rel);
  }
  if (stale.length === 0) return 'dist/ is up to date';
  const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: projectPath(), encoding: 'utf8' });
  if (!existsSync(projectPath('dist', 'cli', 'floodgate.js')))
    throw new Error(`build failed:\n${r.stdout}${r.stderr}`);
  // The bare forwarder runs compiled, as floodgate does (bench/tsconfig.bare.json: it and what it imports).
  const b = spawnSync('npx', ['tsc', '-p', 'bench/tsconfig.bare.json'], {
    cwd: projectPath(),
    encoding: 'utf8',
  });
  if (!existsSync(projectPath(...BARE_FORWARDER)))
    throw new Error(`build of the bare forwarder failed:\n${b.stdout}${b.stderr}`);
  if (r.status !== 0)
    return `built dist/ (${stale.length} stale files; tsc reported errors, but emitted:\n${r.stdout.slice(0, 1_000)})`;
  return `built dist/ (${stale.length} stale files)`;
}
