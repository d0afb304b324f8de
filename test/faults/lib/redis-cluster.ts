// A Redis Cluster of real redis-servers on spare loopback ports: `masters` masters with one replica
// each, joined by `redis-cli --cluster create`, and ready once every replica has synced. A short
// cluster-node-timeout makes a failover take seconds. kill() SIGKILLs one node; nodes() reads
// CLUSTER NODES from any node still alive. FG_CLUSTER_LOG=1 keeps each node's log in its directory.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../helpers/redis-server.js';
import { waitFor } from '../../helpers/wait.js';

const run = promisify(execFile);

export interface ClusterNodeInfo {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** The master's id, for a replica. */
  masterId: string | null;
  failed: boolean;
  /** How many slots it serves. */
  slots: number;
}

export interface RedisCluster {
  readonly ports: readonly number[];
  /** A seed URL (the first node; the client finds the rest). */
  readonly seedUrl: string;
  nodes(): Promise<ClusterNodeInfo[]>;
  /** The state CLUSTER INFO reports on a node still alive ("ok" or "fail"). */
  state(): Promise<string>;
  kill(port: number): Promise<void>;
  stop(): Promise<void>;
}

export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
    timeout: 5_000,
  });
  return stdout;
}

export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  return text
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const [id, addr, flags, master, , , , , ...slots] = line.trim().split(' ');
      const flagSet = new Set(flags!.split(','));
      const slotCount = slots
        .filter((s) => !s.startsWith('['))
        .reduce((n, s) => {
          const [a, b] = s.split('-').map(Number);
          return n + (b === undefined ? 1 : b - a! + 1);
        }, 0);
      return {
        id: id!,
        port: Number(addr!.split('@')[0]!.split(':')[1]),
        role: flagSet.has('master') ? 'master' : 'replica',
        masterId: master === '-' ? null : master!,
        failed: flagSet.has('fail') || flagSet.has('fail?'),
        slots: slotCount,
      } satisfies ClusterNodeInfo;
    });
}

export async function startRedisCluster({ masters = 3, nodeTimeoutMs = 1_000 } = {}): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'floodgate-cluster-'));
  const children = new Map<number, ChildProcess>();
  const ports: number[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(
      [...children.values()].map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = once(c, 'exit');
        c.kill('SIGKILL');
        await exited;
      }),
    );
    children.clear();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters * 2; i++) {
      // A free port can be taken by another test's server between our probe and redis-server's bind,
      // so a node that exits before it answers is started again on fresh ports (bounded).
      for (let attempt = 1; ; attempt++) {
        const port = await freePort();
        // The bus port too: port + 10000 may be out of range or taken.
        const busPort = await freePort();
        const child = spawn(
          'redis-server',
          [
            '--port',
            String(port),
            '--cluster-port',
            String(busPort),
            '--bind',
            '127.0.0.1',
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            join(dir, `nodes-${port}.conf`),
            '--cluster-node-timeout',
            String(nodeTimeoutMs),
            '--dir',
            dir,
            '--save',
            '',
            '--appendonly',
            'no',
            // Replicas sync at once instead of after the default 5 s, so the cluster is whole sooner.
            '--repl-diskless-sync-delay',
            '0',
            ...(process.env.FG_CLUSTER_LOG ? ['--logfile', join(dir, `log-${port}.txt`)] : []),
          ],
          { stdio: ['ignore', 'pipe', 'ignore'] },
        );
        let output = '';
        child.stdout?.on('data', (chunk: Buffer) => {
          output = (output + chunk.toString()).slice(-2000);
        });
        children.set(port, child);
        const up = await waitFor(
          async () => {
            if (child.exitCode !== null || child.signalCode !== null) return 'exited';
            return (await redisCli(port, 'ping')).trim() === 'PONG' ? 'up' : false;
          },
          { timeoutMs: 10_000, what: `cluster node on ${port}` },
        );
        if (up === 'up') {
          ports.push(port);
          break;
        }
        children.delete(port);
        if (attempt === 3) throw new Error(`redis-server on ${port} exited at start:\n${output}`);
      }
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { timeout: 60_000 },
    );
    const cluster: RedisCluster = {
      ports,
      seedUrl: `redis://127.0.0.1:${ports[0]}`,
      async nodes() {
        for (const port of ports) {
          const c = children.get(port);
          if (!c || c.exitCode !== null || c.signalCode !== null) continue;
          try {
            return parseClusterNodes(await redisCli(port, 'cluster', 'nodes'));
          } catch {
            // try the next node
          }
        }
        throw new Error('no cluster node answers');
      },
      async state() {
        for (const port of ports) {
          const c = children.get(port);
          if (!c || c.exitCode !== null || c.signalCode !== null) continue;
          const info = await redisCli(port, 'cluster', 'info').catch(() => '');
          const m = /cluster_state:(\w+)/.exec(info);
          if (m) return m[1]!;
        }
        return 'unknown';
      },
      async kill(port) {
        const c = children.get(port);
        if (!c || c.exitCode !== null || c.signalCode !== null) return;
        const exited = once(c, 'exit');
        c.kill('SIGKILL');
        await exited;
      },
      stop,
    };
    // Every node must agree the cluster is whole: 3 masters with their slots and one replica each.
    await waitFor(
      async () => {
        for (const port of ports) {
          const info = await redisCli(port, 'cluster', 'info');
          if (!info.includes('cluster_state:ok')) return false;
          const nodes = parseClusterNodes(await redisCli(port, 'cluster', 'nodes'));
          const ms = nodes.filter((n) => n.role === 'master' && n.slots > 0);
          if (ms.length !== masters || nodes.filter((n) => n.role === 'replica').length !== masters)
            return false;
        }
        // A replica that never synced cannot take over: wait until every replication link is up.
        for (const n of (await cluster.nodes()).filter((x) => x.role === 'replica')) {
          const info = await redisCli(n.port, 'info', 'replication');
          if (!info.includes('master_link_status:up')) return false;
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'the cluster to form' },
    );
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}
