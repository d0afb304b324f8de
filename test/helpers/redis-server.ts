// A private redis-server on a spare loopback port, for tests that take Redis away and bring it back:
// stop() kills it, start() runs a fresh one on the same port, pause()/resume() freeze it (SIGSTOP), so
// connections stay open but nothing answers. Nothing is persisted, unless `persistDir` asks for an
// append-only file fsynced on every write (then stop() is a crash that loses nothing acknowledged).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, Socket } from 'node:net';
import { waitFor } from './wait.js';

export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  readonly running: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  pause(): void;
  resume(): void;
}

/** A port that was free a moment ago (the OS picks it; we release it for the caller to bind). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Resolves true when a PING on a fresh connection gets PONG. */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (d) => {
      reply += d.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
  });
}

export interface PrivateRedisOptions {
  /** Keep an append-only file here (appendfsync always), which a restart loads. */
  persistDir?: string;
}

export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const port = await freePort();
  const persistence = options.persistDir
    ? ['--dir', options.persistDir, '--appendonly', 'yes', '--appendfsync', 'always']
    : ['--appendonly', 'no'];
  let child: ChildProcess | null = null;

  const r: PrivateRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return child !== null;
    },
    async start() {
      if (child) return;
      const c = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence],
        { stdio: 'ignore' },
      );
      child = c;
      c.once('exit', () => {
        if (child === c) child = null;
      });
      await waitFor(() => pings(port), { timeoutMs: 10_000, what: `redis-server on port ${port}` });
    },
    async stop() {
      const c = child;
      if (!c) return;
      child = null;
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = once(c, 'exit');
      c.kill('SIGKILL');
      await exited;
      // The listening socket is gone with the process; make sure the port refuses before we return.
      await waitFor(async () => !(await pings(port)), { timeoutMs: 5_000, what: 'redis port to close' });
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
  };
  await r.start();
  return r;
}

export interface SilentRedis {
  readonly url: string;
  /** Commands received after the handshake (lower-cased names), none of which is ever answered. */
  readonly commands: string[];
  close(): Promise<void>;
}

/**
 * A TCP server that passes ioredis's handshake (CLIENT, INFO) and then never answers: a store call on it
 * hangs until the caller's timeout, and the test can see that the call was made.
 */
export async function startSilentRedis(): Promise<SilentRedis> {
  const commands: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (data: Buffer) => {
      // RESP arrays: *<n>\r\n$<len>\r\n<name>\r\n…; the command name is the first bulk string.
      for (const m of data.toString().matchAll(/\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n/g)) {
        const name = m[1]!.toLowerCase();
        if (name === 'info') {
          const info = 'redis_version:7.0.0\r\nloading:0\r\n';
          socket.write(`$${info.length}\r\n${info}\r\n`);
        } else if (name === 'client') {
          socket.write('+OK\r\n'); // CLIENT SETINFO, part of ioredis's handshake
        } else {
          commands.push(name);
        }
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${port}`,
    commands,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
