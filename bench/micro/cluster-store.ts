// What `workers: N` with the memory store costs per decision: the decisions travel from the workers to
// the primary's store (one message per event-loop turn each way) instead of being taken in process.
// Real node:cluster processes and the proxy's own cluster modules; each worker keeps IN_FLIGHT
// decisions outstanding, as a busy worker has that many requests waiting on the limiter.
//
//   npx tsx bench/micro/cluster-store.ts [--quick]
//
// Prints decisions/s, the primary's and the workers' CPU µs per decision, beside the same decisions
// taken in process; writes bench/results/cluster-store.json. Ratios within one run matter.
import cluster from 'node:cluster';
import { mkdirSync, writeFileSync } from 'node:fs';
import { BreakerRegistry } from '../../core/breaker/registry.js';
import { systemClock } from '../../core/clock.js';
import { projectPath } from '../../core/paths.js';
import { ClusterHub } from '../../proxy/cluster/hub.js';
import type { Batch, ToWorker } from '../../proxy/cluster/messages.js';
import { PrimaryLink } from '../../proxy/cluster/primary-link.js';
import { RemoteStore } from '../../proxy/cluster/remote-store.js';
import { RateLimiter } from '../../proxy/ratelimit/limiter.js';
import { MemoryRateLimitStore } from '../../proxy/ratelimit/memory-store.js';
import type { WindowSpec } from '../../proxy/ratelimit/store.js';

const QUICK = process.argv.includes('--quick');
const RUN_MS = QUICK ? 500 : 3_000;
const WORKERS = 2;
const IN_FLIGHT = 32;
const KEYS = 1_000;
const WINDOWS: readonly WindowSpec[] = [
  { name: 'hourly', limit: 1_000_000, windowMs: 3_600_000 },
  { name: 'daily', limit: 10_000_000, windowMs: 86_400_000 },
];

/** Keeps IN_FLIGHT decisions outstanding on `limiter` for `ms`; how many were taken. */
async function drive(limiter: RateLimiter, ms: number): Promise<number> {
  const until = performance.now() + ms;
  let done = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async (_, lane) => {
      for (let i = lane; performance.now() < until; i += IN_FLIGHT) {
        await limiter.check(`client-${i % KEYS}`);
        done++;
      }
    }),
  );
  return done;
}

const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

if (cluster.isWorker) {
  const link = new PrimaryLink((b: Batch) => process.send!(b));
  const limiter = new RateLimiter({ store: new RemoteStore(link), windows: WINDOWS, scope: 'bench' });
  process.on('message', (m: ToWorker | { t: 'go' }) => {
    if (m.t === 'answers') link.receive(m);
    if (m.t !== 'go') return;
    void (async () => {
      const c0 = cpuUs();
      const decisions = await drive(limiter, RUN_MS);
      process.send!({ t: 'done', decisions, cpuUs: cpuUs() - c0 });
    })();
  });
  process.send!({ t: 'ready' });
} else {
  // In process first: the figure the cluster's is compared with.
  const local = new RateLimiter({ store: new MemoryRateLimitStore(), windows: WINDOWS, scope: 'bench' });
  await drive(local, 200);
  const l0 = cpuUs();
  const localDecisions = await drive(local, RUN_MS);
  const localCpu = (cpuUs() - l0) / localDecisions;

  const store = new MemoryRateLimitStore();
  const hub = new ClusterHub({ breakers: new BreakerRegistry(), store: () => store, clock: systemClock });
  const workers = Array.from({ length: WORKERS }, () => cluster.fork());
  const results: { decisions: number; cpuUs: number }[] = [];
  let ready = 0;
  let primaryStart = 0;
  const finished = new Promise<void>((resolve) => {
    for (const w of workers) {
      w.on('message', (m: Batch | { t: 'ready' } | { t: 'done'; decisions: number; cpuUs: number }) => {
        if (m.t === 'batch') w.send(hub.serve(w.id, m));
        else if (m.t === 'ready' && ++ready === WORKERS) {
          primaryStart = cpuUs();
          for (const x of workers) x.send({ t: 'go' });
        } else if (m.t === 'done') {
          results.push(m);
          if (results.length === WORKERS) resolve();
        }
      });
    }
  });
  await finished;
  const primaryCpu = cpuUs() - primaryStart;
  for (const w of workers) w.kill();

  const decisions = results.reduce((a, r) => a + r.decisions, 0);
  const row = {
    in_process: {
      decisions_per_s: Math.round(localDecisions / (RUN_MS / 1000)),
      cpu_us_per_decision: localCpu,
    },
    cluster: {
      workers: WORKERS,
      decisions_per_s: Math.round(decisions / (RUN_MS / 1000)),
      primary_cpu_us_per_decision: primaryCpu / decisions,
      worker_cpu_us_per_decision: results.reduce((a, r) => a + r.cpuUs, 0) / decisions,
    },
  };
  const f = (x: number) => x.toFixed(2);
  console.log(
    `\nMemory store decisions, ${IN_FLIGHT} in flight per process, ${RUN_MS} ms (2 windows, ${KEYS} keys)\n`,
  );
  console.log(`| where | decisions/s | CPU µs per decision |`);
  console.log(`|---|---:|---:|`);
  console.log(`| in process | ${row.in_process.decisions_per_s} | ${f(localCpu)} |`);
  console.log(
    `| ${WORKERS} workers → primary | ${row.cluster.decisions_per_s} | primary ${f(row.cluster.primary_cpu_us_per_decision)}, workers ${f(row.cluster.worker_cpu_us_per_decision)} |`,
  );
  mkdirSync(projectPath('bench/results'), { recursive: true });
  writeFileSync(projectPath('bench/results/cluster-store.json'), JSON.stringify(row, null, 2));
}
