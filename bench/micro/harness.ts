// A minimal timing loop for micro benchmarks: warm up (so the JIT has compiled the code), then time
// several samples of back-to-back batches and keep the median. No library: the functions measured are
// synchronous and cheap, so a batch of many calls between two performance.now() readings is enough,
// and the median of samples absorbs a noisy neighbour better than a mean.

export interface MicroOptions {
  readonly warmupMs: number;
  readonly sampleMs: number;
  readonly samples: number;
}

export const DEFAULT_OPTIONS: MicroOptions = { warmupMs: 300, sampleMs: 200, samples: 5 };
export const QUICK_OPTIONS: MicroOptions = { warmupMs: 60, sampleMs: 60, samples: 3 };

export interface MicroResult {
  readonly name: string;
  readonly opsPerSecond: number;
  readonly nsPerOp: number;
  /** Spread of the samples: (max - min) / median, in ops/s. */
  readonly spread: number;
  readonly samples: readonly number[];
}

/** Keeps results observable, so the JIT cannot drop the work as dead code. */
let sink = 0;
export function consume(x: number): void {
  sink = (sink + x) | 0;
}
export function sinkValue(): number {
  return sink;
}

/**
 * `batch()` performs `opsPerBatch` operations and returns a number derived from their results (it is
 * consumed). Returns the median ops/s over the samples.
 */
export function measure(
  name: string,
  opsPerBatch: number,
  batch: () => number,
  o: MicroOptions,
): MicroResult {
  const run = (ms: number): number => {
    let ops = 0;
    const started = performance.now();
    let now = started;
    do {
      consume(batch());
      ops += opsPerBatch;
      now = performance.now();
    } while (now - started < ms);
    return ops / ((now - started) / 1000);
  };
  run(o.warmupMs);
  const samples: number[] = [];
  for (let i = 0; i < o.samples; i++) samples.push(run(o.sampleMs));
  const sorted = [...samples].sort((a, b) => a - b);
  const med = sorted[sorted.length >> 1]!;
  return {
    name,
    opsPerSecond: med,
    nsPerOp: 1e9 / med,
    spread: (sorted[sorted.length - 1]! - sorted[0]!) / med,
    samples,
  };
}
