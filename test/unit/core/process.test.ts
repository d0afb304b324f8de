import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isProcessError, type ProcessError, runProcess, TailBuffer } from '../../../core/process.js';
import { waitFor } from '../../helpers/wait.js';

const node = process.execPath;

/** Awaits a run that must reject with a ProcessError, and hands the error back for its code. */
async function processFailure(promise: Promise<unknown>): Promise<ProcessError> {
  const err = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(isProcessError(err)).toBe(true);
  return err as ProcessError;
}

/** Running, as opposed to gone or a zombie (killed, not yet reaped by whoever inherited it). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'floodgate-process-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('runProcess', () => {
  it('captures stdout and the stderr tail of a successful run', async () => {
    const result = await runProcess(node, ['-e', 'process.stdout.write("out"); process.stderr.write("err")']);
    expect(result.stdout).toBe('out');
    expect(result.stderrTail).toBe('err');
    expect(result.durationMs).toBeGreaterThan(0);
  });

  it('hands every stderr line to onStderrLine, beyond what the tail keeps', async () => {
    const script =
      'for (let i = 0; i < 2000; i++) process.stderr.write("line " + i + "\\r\\n"); process.stderr.write("last")';
    const lines: string[] = [];
    const result = await runProcess(node, ['-e', script], { onStderrLine: (l) => lines.push(l) });
    expect(lines).toHaveLength(2001);
    expect(lines[0]).toBe('line 0');
    expect(lines[1999]).toBe('line 1999');
    expect(lines[2000]).toBe('last');
    expect(result.stderrTail.length).toBeLessThanOrEqual(4096);
  });

  it('passes arguments verbatim: no shell ever interprets them', async () => {
    const tricky = ['$(echo pwned)', '; rm -rf /', '`id`', 'it\'s "quoted"', 'a b', '*', '\n'];
    const result = await runProcess(node, [
      '-e',
      'console.log(JSON.stringify(process.argv.slice(1)))',
      ...tricky,
    ]);
    expect(JSON.parse(result.stdout)).toEqual(tricky);
  });

  it('fails with process_failed and keeps only the last 4 KiB of stderr', async () => {
    const script = 'process.stderr.write("x".repeat(10000) + "\\nthe real reason\\n"); process.exit(3)';
    const err = await processFailure(runProcess(node, ['-e', script]));
    expect(err.code).toBe('process_failed');
    expect(err.exitCode).toBe(3);
    expect(err.stderrTail!.length).toBeLessThanOrEqual(4096);
    expect(err.stderrTail).toMatch(/the real reason\n$/);
    expect(err.message).toContain('the real reason');
  });

  it('fails with engine_unavailable when the program does not exist', async () => {
    const err = await processFailure(runProcess(join(dir, 'no-such-binary'), []));
    expect(err.code).toBe('engine_unavailable');
  });

  it('kills the process on timeout', async () => {
    const started = Date.now();
    const err = await processFailure(
      runProcess(node, ['-e', 'setInterval(() => {}, 1000)'], { timeoutMs: 200 }),
    );
    expect(err.code).toBe('timeout');
    expect(err.signal).toBe('SIGKILL');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('does not start when the signal has already fired', async () => {
    const marker = join(dir, 'should-not-exist');
    const err = await processFailure(
      runProcess(node, ['-e', `require("fs").writeFileSync(${JSON.stringify(marker)}, "")`], {
        signal: AbortSignal.abort(),
      }),
    );
    expect(err.code).toBe('aborted');
    await expect(readFile(marker)).rejects.toThrow();
  });

  it('kills the whole process tree promptly on abort', async () => {
    const pids = join(dir, 'pids.json');
    // The child starts a grandchild, reports both pids, then both idle forever.
    const script = `
      const { spawn } = require('child_process');
      const g = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      require('fs').writeFileSync(${JSON.stringify(pids)}, JSON.stringify([process.pid, g.pid]));
      setInterval(() => {}, 1000);`;
    const controller = new AbortController();
    const run = runProcess(node, ['-e', script], { signal: controller.signal });
    const [child, grandchild] = await waitFor(
      async () => JSON.parse(await readFile(pids, 'utf8')) as [number, number],
      { what: 'the process tree to start' },
    );
    expect(alive(child) && alive(grandchild)).toBe(true);

    const abortedAt = Date.now();
    controller.abort(new Error('job cancelled'));
    const err = await processFailure(run);
    expect(Date.now() - abortedAt).toBeLessThan(1000);
    expect(err.code).toBe('aborted');
    expect(alive(child)).toBe(false);
    // SIGKILL reached the grandchild with the child; its death is not ordered with our 'close'.
    await waitFor(() => !alive(grandchild), { timeoutMs: 1000, what: 'the grandchild to die' });
  });

  it('fails when stdout exceeds its cap', async () => {
    const err = await processFailure(
      runProcess(node, ['-e', 'process.stdout.write("y".repeat(100000))'], { maxStdoutBytes: 1000 }),
    );
    expect(err.code).toBe('process_failed');
  });
});

describe('TailBuffer', () => {
  it('keeps exactly the last bytes across chunk boundaries', () => {
    const tail = new TailBuffer(5);
    for (const chunk of ['abc', 'defg', 'h', 'ijklmnop', 'q']) tail.push(Buffer.from(chunk));
    expect(tail.toString()).toBe('mnopq');
  });

  it('keeps everything while under the limit', () => {
    const tail = new TailBuffer(100);
    tail.push(Buffer.from('a'));
    tail.push(Buffer.from('b'));
    expect(tail.toString()).toBe('ab');
  });
});
