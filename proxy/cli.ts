#!/usr/bin/env node
// The `floodgate` command (DESIGN §1). Each subcommand parses its arguments and hands off to a
// module that does the work; nothing here is reachable from the hot path.
import { Command, InvalidArgumentError } from 'commander';
import { explainRequest, parseHeaderArg, summarizePolicy } from './config/describe.js';
import { loadPolicyFile } from './config/load.js';
import { PolicyError, startProxy } from './main.js';
import { createLogger } from './observability/logger.js';

const program = new Command('floodgate')
  .description('A resilience sidecar: rate limits, circuit breakers, and a transcription backend')
  .showHelpAfterError();

program
  .command('proxy')
  .description('run the sidecar proxy')
  .option('--config <file>', 'policy file (default: $FLOODGATE_CONFIG, then config/proxy.yaml)')
  .action(async (opts: { config?: string }) => {
    const configFile = opts.config ?? process.env.FLOODGATE_CONFIG ?? 'config/proxy.yaml';
    const logger = createLogger('floodgate-proxy');
    let proxy: Awaited<ReturnType<typeof startProxy>>;
    try {
      proxy = await startProxy({ configFile, logger });
    } catch (err) {
      if (err instanceof PolicyError) {
        for (const e of err.errors) process.stderr.write(e + '\n');
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

program
  .command('explain')
  .description('show the route, limits, key and upstream that apply to one request')
  .requiredOption('--config <file>', 'policy file')
  .option('-H, --header <header>', "a request header, 'Name: value' (repeatable)", collect, {})
  .argument('<method>')
  .argument('<path>')
  .action(async (method: string, path: string, opts: { config: string; header: Record<string, string> }) => {
    const r = await loadPolicyFile(opts.config);
    if (!r.ok) {
      for (const e of r.errors) process.stderr.write(e + '\n');
      process.exitCode = 1;
      return;
    }
    process.stdout.write(explainRequest(r.policy, { method, path, headers: opts.header }) + '\n');
  });

program
  .command('model')
  .description('manage whisper models')
  .command('download')
  .description('fetch a ggml whisper model (tiny, tiny.en, base, base.en, …) and verify its checksum')
  .argument('<name>')
  .option('--dir <dir>', 'where to put it (default: $DATA_DIR/models)')
  .action(async (name: string, opts: { dir?: string }) => {
    const { runModelDownload } = await import('../backend/model/cli.js');
    process.exitCode = await runModelDownload(name, opts.dir);
  });

await program.parseAsync();
