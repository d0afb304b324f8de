#!/usr/bin/env node
// The `floodgate` command: proxy, backend, up, validate, explain, model, transcribe. Each subcommand parses its arguments and hands off to a
// module that does the work; nothing here is reachable from the hot path. The backend's commands import
// it lazily, so the proxy runs on an install without the backend's packages (--omit=optional).
import cluster from 'node:cluster';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { createLogger } from '../core/logger.js';
import { startCluster, WorkerStartError } from '../proxy/cluster/primary.js';
import { runWorker } from '../proxy/cluster/worker.js';
import { explainRequest, parseHeaderArg, summarizePolicy } from '../proxy/config/describe.js';
import { loadPolicyFile } from '../proxy/config/load.js';
import { canonicalIp } from '../proxy/http/client-ip.js';
import { isListenError, listenFailureLine } from '../proxy/listen.js';
import { DRAIN_MS, loadPolicyOrThrow, PolicyError, startProxy } from '../proxy/main.js';
import { importBackend, packageJson } from './package.js';

const program = new Command('floodgate')
  .description('A resilience sidecar: rate limits, circuit breakers, and a transcription backend')
  .version(packageJson().version, '-V, --version', 'print the version')
  .showHelpAfterError();

program
  .command('proxy')
  .description('run the sidecar proxy')
  .option('--config <file>', 'policy file (default: $FLOODGATE_CONFIG, then config/proxy.yaml)')
  .action(async (opts: { config?: string }) => {
    const configFile = opts.config ?? process.env.FLOODGATE_CONFIG ?? 'config/proxy.yaml';
    const logger = createLogger('floodgate-proxy');
    // A cluster's worker runs this same command; its primary tells it everything else.
    if (cluster.isWorker) return runWorker(logger.child({ worker: cluster.worker!.id }));
    let proxy: { reload(): Promise<unknown>; close(): Promise<void> };
    try {
      const policy = await loadPolicyOrThrow(configFile);
      const workers = policy.workers === 'auto' ? availableParallelism() : policy.workers;
      proxy =
        workers > 1
          ? await startCluster({ configFile, policy, workers, logger })
          : await startProxy({ configFile, logger, policy });
    } catch (err) {
      if (err instanceof PolicyError) {
        for (const e of err.errors) process.stderr.write(e + '\n');
        process.exit(1);
      }
      if (isListenError(err)) {
        process.stderr.write(`floodgate proxy: ${listenFailureLine(err, configFile)}\n`);
        process.exit(1);
      }
      if (err instanceof WorkerStartError) {
        process.stderr.write(`floodgate proxy: a worker could not start: ${err.message}\n`);
        process.exit(1);
      }
      throw err;
    }
    process.on('SIGHUP', () => void proxy.reload());
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down: draining in-flight requests');
      // close() bounds each of its steps; this is the last resort should one of them still hang.
      setTimeout(() => {
        logger.error('shutdown overran its bound; exiting');
        logger.flush(() => process.exit(1));
      }, DRAIN_MS + 5_000).unref();
      proxy.close().then(
        () => logger.flush(() => process.exit(0)),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          logger.flush(() => process.exit(1));
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

/** A TCP port, or a clean commander error naming what was given (Number() would pass NaN on to listen). */
const parsePort = (value: string): number => {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65_535)
    throw new InvalidArgumentError(`expected a port number from 0 to 65535, got '${value}'`);
  return port;
};

program
  .command('backend')
  .description('run the transcription backend (API and workers)')
  .option('--port <n>', 'listen port (default: $PORT, then 8000)', parsePort)
  .option('--host <h>', 'listen address (default: $HOST, then 127.0.0.1)')
  .option('--role <role>', 'api | worker | all', 'all')
  .action(async (opts: { port?: number; host?: string; role: string }) => {
    const { runBackendCli } = await importBackend('backend', () => import('../backend/main.js'));
    try {
      await runBackendCli(opts);
    } catch (err) {
      process.stderr.write(`floodgate backend: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    }
  });

program
  .command('up')
  .description('run the whole stack: backend on :8000 and proxy on :8080 (what `npm start` runs)')
  .option('--config <file>', 'policy file', 'config/proxy.yaml')
  .action(async (opts: { config: string }) => {
    const { runStack, isStackStartError } = await importBackend('up', () => import('./stack.js'));
    try {
      await runStack(opts.config);
    } catch (err) {
      if (!isStackStartError(err)) throw err;
      for (const line of err.message.split('\n')) process.stderr.write(`floodgate up: ${line}\n`);
      process.exit(1);
    }
  });

program
  .command('validate')
  .description('check policy files; exit 1 with FILE:LINE:COL errors if any is invalid')
  .argument('<files...>')
  .action(async (files: string[]) => {
    let failed = false;
    for (const file of files) {
      const r = await loadPolicyFile(file);
      if (r.ok) {
        process.stdout.write(summarizePolicy(file, r.policy) + '\n');
      } else {
        failed = true;
        for (const e of r.errors) process.stderr.write(e + '\n');
      }
    }
    process.exitCode = failed ? 1 : 0;
  });

const collect = (value: string, previous: Record<string, string>): Record<string, string> => {
  const h = parseHeaderArg(value);
  if (!h) throw new InvalidArgumentError(`expected 'Name: value', got '${value}'`);
  return { ...previous, [h[0].toLowerCase()]: h[1] };
};

const clientAddress = (value: string): string => {
  if (isIP(value) === 0) throw new InvalidArgumentError(`expected an IPv4 or IPv6 address, got '${value}'`);
  return canonicalIp(value);
};

program
  .command('explain')
  .description('show the route, limits, key and upstream that apply to one request')
  .requiredOption('--config <file>', 'policy file')
  .option('-H, --header <header>', "a request header, 'Name: value' (repeatable)", collect, {})
  .option(
    '--ip <address>',
    'the client address (as client_ip resolves it), to check the allowlist',
    clientAddress,
  )
  .argument('<method>')
  .argument('<path>')
  .action(
    async (
      method: string,
      path: string,
      opts: { config: string; header: Record<string, string>; ip?: string },
    ) => {
      const r = await loadPolicyFile(opts.config);
      if (!r.ok) {
        for (const e of r.errors) process.stderr.write(e + '\n');
        process.exitCode = 1;
        return;
      }
      const request = { method, path, headers: opts.header, clientIp: opts.ip };
      process.stdout.write(explainRequest(r.policy, request) + '\n');
    },
  );

const model = program.command('model').description('manage whisper models');

model
  .command('download')
  .description('fetch a ggml whisper model (tiny, tiny.en, base, base.en, …) and verify its checksum')
  .argument('<name>')
  .option('--dir <dir>', 'where to put it (default: $DATA_DIR/models)')
  .action(async (name: string, opts: { dir?: string }) => {
    const { runModelDownload } = await importBackend('model', () => import('../backend/model/cli.js'));
    process.exitCode = await runModelDownload(name, opts.dir);
  });

model
  .command('tiny-test')
  .description('write a tiny random-weight model for an offline first run (needs WHISPER_FAST_DECODE=1)')
  .option('--dir <dir>', 'where to put it (default: $DATA_DIR/models)')
  .action(async (opts: { dir?: string }) => {
    const { runTinyTestModel } = await importBackend('model', () => import('../backend/model/cli.js'));
    process.exitCode = await runTinyTestModel(opts.dir);
  });

program
  .command('transcribe')
  .description('upload audio to the transcription API, follow its progress, write the transcript')
  .argument('[audio]', 'the audio file (not needed with --job)')
  .option('--url <url>', 'the API, usually through the proxy', 'http://127.0.0.1:8080')
  .option('--format <format>', 'json | txt | srt | vtt', 'json')
  .option('-o, --output <file>', 'write the transcript here instead of stdout')
  .option('--job <id>', 'follow a job already submitted (after Ctrl-C) instead of uploading')
  .action(
    async (
      audio: string | undefined,
      opts: { url: string; format: string; output?: string; job?: string },
    ) => {
      const { runTranscribe } = await importBackend('transcribe', () => import('../backend/client/cli.js'));
      process.exitCode = await runTranscribe(audio, opts);
    },
  );

await program.parseAsync();
