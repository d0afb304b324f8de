// A bounded load generator: `concurrency` loops send requests until a deadline, a request budget or a
// stop flag, whichever comes first, and every request becomes a sample. A request that fails without
// an HTTP answer is a sample with status 0 and its error: the suite counts those as lost.
export interface Sample {
  /** performance.now() when the request was sent. */
  readonly at: number;
  readonly ms: number;
  /** 0: no HTTP answer at all. */
  readonly status: number;
  readonly error?: string;
  readonly body?: string;
  readonly headers?: Record<string, string | string[] | undefined>;
  /** Which loop sent it. */
  readonly worker: number;
}

export interface Reply {
  status: number;
  body?: string;
  headers?: Record<string, string | string[] | undefined>;
}

export interface LoadOptions {
  concurrency: number;
  /** Hard bound on the run. */
  durationMs: number;
  /** Hard bound on the number of requests. */
  maxRequests: number;
  /** Stops early once this says so (checked before each request). */
  stop?: () => boolean;
  send: (worker: number, i: number) => Promise<Reply>;
}

export interface LoadRun {
  readonly samples: Sample[];
  /** Resolves with every sample once all loops have ended. */
  readonly done: Promise<Sample[]>;
  /** Ends the run early; resolves like done. */
  end(): Promise<Sample[]>;
}

export function startLoad(o: LoadOptions): LoadRun {
  const samples: Sample[] = [];
  const deadline = performance.now() + o.durationMs;
  let sent = 0;
  let ended = false;
  const loop = async (worker: number): Promise<void> => {
    while (!ended && performance.now() < deadline && sent < o.maxRequests && !o.stop?.()) {
      const i = sent++;
      const at = performance.now();
      try {
        const r = await o.send(worker, i);
        samples.push({ at, ms: performance.now() - at, worker, ...r });
      } catch (err) {
        samples.push({ at, ms: performance.now() - at, worker, status: 0, error: String(err) });
      }
    }
  };
  const done = Promise.all(Array.from({ length: o.concurrency }, (_, w) => loop(w))).then(() => samples);
  return {
    samples,
    done,
    end() {
      ended = true;
      return done;
    },
  };
}

/** Counts of each status, e.g. { 200: 950, 429: 50 }. */
export function statusCounts(samples: readonly { status: number }[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const s of samples) out[s.status] = (out[s.status] ?? 0) + 1;
  return out;
}

export function maxMs(samples: readonly Sample[]): number {
  return samples.reduce((m, s) => Math.max(m, s.ms), 0);
}

export function percentile(samples: readonly Sample[], p: number): number {
  if (samples.length === 0) return 0;
  const sorted = samples.map((s) => s.ms).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** "200×950 429×50" */
export function formatCounts(counts: Record<number, number>): string {
  return Object.entries(counts)
    .map(([status, n]) => `${status}×${n}`)
    .join(' ');
}
