// Resident memory of processes, from /proc/PID/status (VmRSS), and the least-squares slope of a series.
import { readFileSync } from 'node:fs';

/** VmRSS in MB, or null when the process is gone. */
export function rssMb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export interface RssPoint {
  /** ms since the sampler started. */
  readonly t: number;
  readonly mb: number;
  readonly pid: number;
}

export interface RssSamplerOptions {
  intervalMs?: number;
  /**
   * Send each process SIGUSR2 and sample `settleMs` later: for processes started with
   * lib/gc-on-signal.cjs, whose handler runs a full GC, so a sample is memory kept, not garbage.
   */
  collectFirst?: boolean;
  settleMs?: number;
}

/** Samples each named process every `intervalMs`; the pid is asked for at each tick (restarts). */
export class RssSampler {
  readonly series = new Map<string, RssPoint[]>();
  private readonly started = performance.now();
  private readonly timer: NodeJS.Timeout;
  private stopped = false;

  constructor(pids: () => Record<string, number | null>, o: RssSamplerOptions = {}) {
    const sample = (targets: [string, number][]): void => {
      if (this.stopped) return;
      const t = performance.now() - this.started;
      for (const [name, pid] of targets) {
        const mb = rssMb(pid);
        if (mb === null) continue;
        const points = this.series.get(name) ?? [];
        if (points.length === 0) this.series.set(name, points);
        points.push({ t, mb, pid });
      }
    };
    const tick = (): void => {
      const targets = Object.entries(pids()).filter((e): e is [string, number] => e[1] !== null);
      if (!o.collectFirst) {
        sample(targets);
        return;
      }
      for (const [, pid] of targets) {
        try {
          process.kill(pid, 'SIGUSR2');
        } catch {
          // gone (a restart): nothing to sample
        }
      }
      setTimeout(() => sample(targets), o.settleMs ?? 200).unref();
    };
    tick();
    this.timer = setInterval(tick, o.intervalMs ?? 1_000);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}

/** Least-squares slope of mb over t, in MB per minute. */
export function slopeMbPerMin(points: readonly RssPoint[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const mm = points.reduce((s, p) => s + p.mb, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.mb - mm);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60_000;
}
