// Fault 10, the soak: mixed traffic through a proxy process into a backend process for
// FAULTS_SOAK_SECONDS (default 300; CI uses 60), with real Redis, ffmpeg and whisper.cpp:
//   - a submitter uploads a short recording every two seconds, with an Idempotency-Key, retrying
//     (same key) after a 502 or 503 until it gets its 202;
//   - pollers follow every job through /status to its /result, which must equal the reference;
//   - a greedy client polls a route limited to 20 an hour, and gets 429s for the rest of the run;
//   - the backend is SIGKILLed once, early on, and started again on the same port.
// A burst of traffic before the soak, and after the restart, warms the processes up (see WARM_UP_MS).
// The only answers other than 2xx allowed are the greedy client's 429s, and, during the restart, the
// 502 of an unreachable upstream (or a dropped connection) and the 503 of the open circuit, all with
// their documented bodies (proxy/http/errors.ts). No upload and no job may be lost. The RSS of both processes is sampled every
// second, each sample right after a full GC in the process (lib/gc-on-signal.cjs), so that it counts
// memory kept rather than garbage; the least-squares slope over the second half must stay under
// 5 MB/min, and is reported.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../core/paths.js';
import { tonePattern } from '../helpers/audio.js';
import { type BackendProcess, spawnBackend } from '../helpers/backend-process.js';
import { tinyGgmlModelPath } from '../helpers/ggml-model.js';
import { type ChildProxy, spawnProxy, writePolicy } from '../helpers/proxy.js';
import { uniquePrefix } from '../helpers/redis.js';
import { freePort, type PrivateRedis, startPrivateRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait.js';
import { content, result, submit, type Transcript, waitForState } from './lib/jobs.js';
import { recordFault } from './lib/report.js';
import { RssSampler, slopeMbPerMin } from './lib/rss.js';

const SOAK_MS = Number(process.env.FAULTS_SOAK_SECONDS ?? 300) * 1000;
const RESTART_AT = 0.3;
const SUBMIT_EVERY_MS = 2_000;
const POLL_EVERY_MS = 150;
const GREEDY_EVERY_MS = 25;
const GREEDY_LIMIT = 20;
const MAX_SLOPE_MB_PER_MIN = 5;
const BREAKER_OPEN_MS = 2_000;
/**
 * A fresh node process grows for a while without leaking: code gets compiled, V8 sizes its heap for
 * the allocation rate it sees. A burst of the same kinds of traffic before the soak, and after the
 * restart for the new backend, gets that over with, so that the second half measures leaks.
 */
const WARM_UP_MS = 12_000;
const REWARM_MS = 6_000;
/** Lets the sampler run a full GC in a process before it reads its RSS (see lib/gc-on-signal.cjs). */
const GC_ON_SIGNAL = `--expose-gc --require ${join(projectRoot(), 'test', 'faults', 'lib', 'gc-on-signal.cjs')}`;

interface Exchange {
  client: 'submitter' | 'poller' | 'greedy';
  route: string;
  status: number;
  body: string;
  /** Epoch ms at the start and the end of the exchange. */
  start: number;
  end: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('fault 10: soak through proxy and backend', () => {
  const prefix = uniquePrefix('faults-soak');
  let redis: PrivateRedis;
  let dir: string;
  let audio: string;
  let model: string;
  let backendPort: number;
  const backends: BackendProcess[] = [];
  let proxy: ChildProxy;
  const agent = new Agent({ connections: 32, keepAliveTimeout: 10_000 });
  const backend = () => backends.at(-1)!;

  const startBackend = async (): Promise<void> => {
    backends.push(
      await spawnBackend({
        redisUrl: redis.url,
        prefix,
        dataDir: join(dir, 'data'),
        model,
        port: backendPort,
        env: { JOB_LEASE: '2s', CHECKPOINT_EVERY_SEGMENTS: '1', NODE_OPTIONS: GC_ON_SIGNAL },
        startTimeoutMs: 60_000,
      }),
    );
  };

  beforeAll(async () => {
    if (!existsSync(join(projectRoot(), '.cache', 'whisper', 'bin', 'main')))
      throw new Error('whisper.cpp is not built; run npm run build:whisper');
    dir = await mkdtemp(join(tmpdir(), 'floodgate-faults-soak-'));
    redis = await startPrivateRedis();
    model = await tinyGgmlModelPath();
    audio = await tonePattern(join(dir, 'short.wav'), { totalSec: 20 });
    backendPort = await freePort();
    await startBackend();
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, {
      version: 1,
      store: {
        type: 'redis',
        url: redis.url,
        prefix: `${prefix}proxy:`,
        timeout: '200ms',
        on_error: 'local',
      },
      upstreams: {
        transcriber: {
          url: backend().url,
          timeouts: { connect: '1s', response: '30s', idle: '30s' },
          breaker: {
            failure_threshold: 5,
            success_threshold: 2,
            timeout: `${BREAKER_OPEN_MS}ms`,
            half_open_max_calls: 3,
            failure_statuses: [502, 503, 504],
          },
        },
      },
      routes: [
        {
          name: 'transcribe',
          match: { path: '/transcribe', methods: ['POST'] },
          upstream: 'transcriber',
          max_body: '50mb',
          limits: { key: 'header:X-Client', hourly: 10_000, daily: 100_000 },
        },
        {
          name: 'status',
          match: { path: '/status/*' },
          upstream: 'transcriber',
          limits: { key: 'header:X-Client', hourly: 100_000, daily: 1_000_000 },
        },
        {
          name: 'result',
          match: { path: '/result/*' },
          upstream: 'transcriber',
          limits: { key: 'header:X-Client', hourly: 100_000, daily: 1_000_000 },
        },
        {
          name: 'greedy',
          match: { path: '/healthz' },
          upstream: 'transcriber',
          limits: { key: 'header:X-Client', hourly: GREEDY_LIMIT, daily: GREEDY_LIMIT },
        },
      ],
    });
    proxy = await spawnProxy(file, { NODE_OPTIONS: GC_ON_SIGNAL });
  });

  afterAll(async () => {
    await proxy?.kill();
    await Promise.all(backends.map((b) => b.kill()));
    await agent.close();
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    `stays correct and flat for ${SOAK_MS / 1000} s of mixed traffic with a backend restart`,
    async () => {
      // The reference transcript, straight from the backend.
      const referenceId = await submit(backend().url, audio);
      await waitForState(() => backend().url, referenceId, ['completed'], 120_000);
      const reference = content(await result(backend().url, referenceId));
      const upload = await readFile(audio);

      /** Status, result and limited polls as fast as 16 clients go, kept out of the soak's accounts. */
      const warmUp = async (ms: number): Promise<number> => {
        const until = Date.now() + ms;
        let sent = 0;
        const paths = [`/status/${referenceId}`, `/result/${referenceId}`, '/healthz'];
        await Promise.all(
          Array.from({ length: 16 }, async (_, w) => {
            for (let i = 0; Date.now() < until && i < 100_000; i++) {
              const r = await request(`${proxy.url}${paths[(w + i) % paths.length]}`, {
                dispatcher: agent,
                headers: { 'x-client': `warm-${w}` },
              }).catch(() => null);
              await r?.body.dump();
              sent++;
            }
          }),
        );
        return sent;
      };
      const warmed = await warmUp(WARM_UP_MS);

      const exchanges: Exchange[] = [];
      const send = async (
        client: Exchange['client'],
        route: string,
        path: string,
        init: { method?: 'GET' | 'POST'; body?: FormData; headers?: Record<string, string> } = {},
      ) => {
        const start = Date.now();
        let status = 0;
        let body = '';
        try {
          // undici's fetch for the multipart body; request() for the rest.
          if (init.body) {
            const res = await fetch(`${proxy.url}${path}`, {
              method: 'POST',
              body: init.body,
              headers: { 'x-client': client, ...init.headers },
            });
            status = res.status;
            body = await res.text();
          } else {
            const res = await request(`${proxy.url}${path}`, {
              dispatcher: agent,
              method: init.method ?? 'GET',
              headers: { 'x-client': client, ...init.headers },
            });
            status = res.statusCode;
            body = await res.body.text();
          }
        } catch (err) {
          body = String(err);
        }
        const e: Exchange = { client, route, status, body, start, end: Date.now() };
        exchanges.push(e);
        return e;
      };

      const soakStart = Date.now();
      const soakEnd = soakStart + SOAK_MS;
      const rss = new RssSampler(() => ({ proxy: proxy.pid, backend: backend().pid }), {
        collectFirst: true,
      });
      const active = new Set<string>();
      const done = new Map<string, Transcript>();
      const lostUploads: string[] = [];
      const failedJobs: string[] = [];
      let submitting = true;

      const submitter = (async () => {
        while (Date.now() < soakEnd) {
          const key = randomUUID();
          let accepted = false;
          for (let attempt = 0; attempt < 60 && !accepted; attempt++) {
            const form = new FormData();
            form.append('file', new Blob([upload], { type: 'audio/wav' }), 'short.wav');
            const e = await send('submitter', 'transcribe', '/transcribe', {
              body: form,
              headers: { 'idempotency-key': key },
            });
            if (e.status === 202) {
              active.add((JSON.parse(e.body) as { job_id: string }).job_id);
              accepted = true;
            } else {
              await sleep(500);
            }
          }
          if (!accepted) lostUploads.push(key);
          await sleep(SUBMIT_EVERY_MS);
        }
        submitting = false;
      })();

      const poller = async () => {
        for (let round = 0; round < 100_000; round++) {
          if (!submitting && active.size === 0) return;
          if (Date.now() > soakEnd + 180_000) return;
          for (const id of [...active]) {
            const e = await send('poller', 'status', `/status/${id}`);
            if (e.status === 200) {
              const s = JSON.parse(e.body) as { state: string };
              if (s.state === 'failed') {
                failedJobs.push(id);
                active.delete(id);
              } else if (s.state === 'completed' && active.has(id)) {
                const r = await send('poller', 'result', `/result/${id}`);
                if (r.status === 200) {
                  done.set(id, JSON.parse(r.body) as Transcript);
                  active.delete(id);
                }
              }
            }
            await sleep(POLL_EVERY_MS);
          }
          await sleep(POLL_EVERY_MS);
        }
      };
      const pollers = Promise.all([poller(), poller()]);

      const greedy = (async () => {
        while (Date.now() < soakEnd) {
          await send('greedy', 'greedy', '/healthz');
          await sleep(GREEDY_EVERY_MS);
        }
      })();

      // The restart, early enough that the second half shows the new process settled.
      await waitFor(() => Date.now() >= soakStart + RESTART_AT * SOAK_MS, {
        timeoutMs: SOAK_MS,
        intervalMs: 200,
        what: 'the restart moment',
      });
      const killedAt = Date.now();
      await backend().kill('SIGKILL');
      await startBackend();
      const restartedAt = Date.now();
      // Recovered once a request through the proxy succeeds again.
      await waitFor(() => exchanges.some((e) => e.start > restartedAt && e.status === 200), {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: 'traffic to flow again after the restart',
      });
      const recoveredAt = exchanges.filter((e) => e.start > restartedAt && e.status === 200)[0]!.end;
      const rewarmed = await warmUp(REWARM_MS);

      await Promise.all([submitter, greedy]);
      rss.stop();
      await pollers;

      // Nothing lost: every upload accepted, every job completed with the reference transcript.
      expect(lostUploads).toEqual([]);
      const accepted = exchanges.filter((e) => e.client === 'submitter' && e.status === 202).length;
      expect(done.size).toBe(accepted);
      expect(failedJobs).toEqual([]);
      expect([...active]).toEqual([]);
      const wrong = [...done.values()].filter(
        (t) => JSON.stringify(content(t)) !== JSON.stringify(reference),
      );
      expect(wrong).toHaveLength(0);
      expect(done.size).toBeGreaterThanOrEqual(Math.floor(SOAK_MS / (SUBMIT_EVERY_MS * 4)));

      // Every answer accounted for.
      const restartWindow = (e: Exchange) => e.end >= killedAt && e.start <= recoveredAt + 1_000;
      const unexpected = exchanges.filter((e) => {
        if (e.status >= 200 && e.status < 300) return false;
        if (e.status === 429)
          return e.client !== 'greedy' || !e.body.includes('"error":"Rate limit exceeded"');
        if (e.status === 502)
          return !restartWindow(e) || e.body !== '{"error":"Bad gateway","upstream":"transcriber"}';
        if (e.status === 503)
          return !restartWindow(e) || !e.body.includes('"error":"Service temporarily unavailable"');
        return true;
      });
      expect(unexpected).toEqual([]);
      const greedyAllowed = exchanges.filter((e) => e.client === 'greedy' && e.status === 200).length;
      expect(greedyAllowed).toBe(GREEDY_LIMIT);

      // Flat memory over the second half.
      const half = SOAK_MS / 2;
      const slopes: Record<string, number> = {};
      for (const [name, points] of rss.series) {
        const second = points.filter((p) => p.t >= half);
        expect(second.length).toBeGreaterThan(SOAK_MS / 1000 / 2 - 5);
        // The restarted backend is one process through the second half.
        expect(new Set(second.map((p) => p.pid)).size).toBe(1);
        slopes[name] = slopeMbPerMin(second);
      }
      const counts = (client: Exchange['client']) => {
        const c: Record<number, number> = {};
        for (const e of exchanges) if (e.client === client) c[e.status] = (c[e.status] ?? 0) + 1;
        return Object.entries(c)
          .map(([s, n]) => `${s}×${n}`)
          .join(' ');
      };
      const mb = (name: string) => {
        const points = rss.series.get(name) ?? [];
        return `${points[0]?.mb.toFixed(0)}→${points.at(-1)?.mb.toFixed(0)} MB`;
      };
      const summary =
        `${exchanges.length} requests over ${SOAK_MS / 1000} s; submitter ${counts('submitter')}; pollers ${counts('poller')}; ` +
        `greedy ${counts('greedy')}; ${done.size} jobs completed, all = reference; backend restart: traffic back ${recoveredAt - killedAt} ms after the kill; ` +
        `warm-up ${warmed} + ${rewarmed} requests before measuring; ` +
        `RSS slope (2nd half) proxy ${slopes.proxy!.toFixed(2)} MB/min (${mb('proxy')}), backend ${slopes.backend!.toFixed(2)} MB/min (${mb('backend')})`;
      console.log(`soak: ${summary}`);
      if (Object.values(slopes).some((slope) => slope >= MAX_SLOPE_MB_PER_MIN)) {
        for (const [name, points] of rss.series) {
          const series = points.map((p) => `${Math.round(p.t / 1000)}:${p.mb.toFixed(1)}`).join(' ');
          console.log(`${name} RSS (s:MB) ${series}`);
        }
      }
      for (const [name, slope] of Object.entries(slopes)) {
        expect(slope, `${name} RSS slope, MB/min`).toBeLessThan(MAX_SLOPE_MB_PER_MIN);
      }
      await recordFault({
        fault: `10 Soak ${SOAK_MS / 1000} s: uploads, polls, a greedy client, backend SIGKILLed at ${RESTART_AT * 100}%`,
        observed: summary,
        lost: `nothing: ${lostUploads.length} uploads lost, ${failedJobs.length} jobs failed, ${unexpected.length} unexpected answers`,
      });
    },
    SOAK_MS + 240_000,
  );
});
