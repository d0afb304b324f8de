// `npm start`: the whole stack for a newcomer (the README's Quickstart). The backend on :8000 and the proxy on
// :8080 in one process, on Redis at $REDIS_URL when it answers, else on a private redis-server
// under DATA_DIR, else on the proxy's memory store with the backend explaining what is missing.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { type RunningBackend, startBackend } from '../backend/main.js';
import { runModelDownload } from '../backend/model/cli.js';
import { type BackendSettings, backendSettingsFromEnv } from '../backend/settings.js';
import { FloodgateError, hasBrand } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { isListenError, listenFailureLine } from '../proxy/listen.js';
import { type RunningProxy, startProxy } from '../proxy/main.js';
import { pingRedis } from '../proxy/ratelimit/redis-client.js';

const INSTALL_REDIS =
  'install Redis to run the backend: `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), or set REDIS_URL';

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

function onPath(binary: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && existsSync(join(dir, binary)));
}

/** A redis-server of our own, on a free loopback port, persisting under `dir`. */
async function startPrivateRedis(dir: string): Promise<{ url: string; child: ChildProcess }> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--appendonly', 'yes', '--save', ''],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (!(await pingRedis(url, 250))) {
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error('the private redis-server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, child };
}

/** The stack did not start, for a reason a line states (a taken port, with what to change; a bad setting, one line each). */
export class StackStartError extends FloodgateError<'stack_start_failed'> {
  constructor(message: string, options?: ErrorOptions) {
    super('StackStartError', 'stack_start_failed', message, options);
  }
}

export function isStackStartError(err: unknown): err is StackStartError {
  return hasBrand(err, 'StackStartError');
}

/** The backend's API could not bind: which address, and the setting that chose it. */
function backendListenFailure(err: unknown, settings: BackendSettings): StackStartError | null {
  const errno = (err as NodeJS.ErrnoException | null)?.code;
  if (errno !== 'EADDRINUSE' && errno !== 'EACCES') return null;
  const address = `${settings.host}:${settings.port}`;
  const problem =
    errno === 'EADDRINUSE'
      ? `${address} (the backend) is already in use (another floodgate or backend?); stop it or set PORT`
      : `${address} (the backend) needs privileges this process lacks; set PORT to 1024 or above`;
  return new StackStartError(problem, { cause: err });
}

export async function runStack(configFile: string): Promise<void> {
  const logger = createLogger('floodgate');
  const env: Record<string, string | undefined> = { ...process.env };
  // Read first, so a bad setting stops the stack before anything starts; the defaults are the backend's.
  let settings: BackendSettings;
  try {
    settings = backendSettingsFromEnv(env);
  } catch (err) {
    if (hasBrand(err, 'SettingsError')) throw new StackStartError((err as Error).message, { cause: err });
    throw err;
  }
  const dataDir = settings.dataDir;
  env.DATA_DIR = dataDir;

  let redisChild: ChildProcess | null = null;
  const redisUrl = settings.redisUrl;
  if (await pingRedis(redisUrl)) {
    env.REDIS_URL = redisUrl;
  } else if (onPath('redis-server')) {
    const own = await startPrivateRedis(join(dataDir, 'redis'));
    redisChild = own.child;
    env.REDIS_URL = own.url;
    logger.info({ redis: own.url }, `no Redis at ${redisUrl}; started a private redis-server`);
  } else {
    env.FLOODGATE_STORE = 'memory';
    env.REDIS_URL = undefined;
    logger.warn(`no Redis at ${redisUrl}: the proxy limits in memory; ${INSTALL_REDIS}`);
  }

  if (!env.WHISPER_MODEL) {
    const model = settings.whisperModel;
    if (!existsSync(model)) {
      logger.info({ model }, 'no WHISPER_MODEL: fetching base.en');
      if ((await runModelDownload('base.en', dirname(model))) !== 0) {
        logger.warn(
          `no whisper model: transcription is not ready. Run \`npx floodgate model download base.en\` on a machine ` +
            `with internet, or set WHISPER_MODEL to a ggml model (${basename(model)} under ${dirname(model)})`,
        );
      }
    }
  }

  let backend: RunningBackend | null = null;
  let proxy: RunningProxy;
  try {
    if (env.REDIS_URL) {
      const backendSettings = backendSettingsFromEnv(env);
      backend = await startBackend(backendSettings, { logger: createLogger('floodgate-backend') }).catch(
        (err: unknown) => {
          throw backendListenFailure(err, backendSettings) ?? err;
        },
      );
    }
    proxy = await startProxy({ configFile, env, logger: createLogger('floodgate-proxy') });
  } catch (err) {
    // Nothing started here outlives a failed start: least of all the private redis-server.
    await backend?.shutdown();
    if (redisChild) {
      redisChild.kill('SIGTERM');
      await once(redisChild, 'exit');
    }
    if (isListenError(err)) throw new StackStartError(listenFailureLine(err, configFile), { cause: err });
    throw err;
  }

  process.on('SIGHUP', () => void proxy.reload());
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await proxy.close();
    await backend?.shutdown();
    if (redisChild) {
      redisChild.kill('SIGTERM');
      await once(redisChild, 'exit');
    }
    logger.flush(() => process.exit(0));
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
