// When a throughput figure says something about the system under test (SUT), and when it does not.
// req/s measures whoever ran out of CPU first. On a small machine that is often not the SUT: the load
// generator's core fills up first (a fast SUT such as nginx is then held back, and a ratio against it
// comes out too high), or another process (Redis, which is not pinned) takes part of the SUT's core.
// A throughput ratio where either side was held back that way is INVALID: the CPU time per response,
// which neither effect changes much, is the figure to read instead.

/** A core at or above this busy share is taken as full: what runs there could not go faster. */
export const SATURATED = 0.9;

/** What the benchmark measured around one run, as shares of one core (NaN where unknown). */
export interface CoreUse {
  /** The SUT's own CPU time over the run. */
  readonly sut: number;
  /** The load generator's, with the upstream's when it shares that core. */
  readonly harness: number;
  /** Each core's busy share, whoever used it. */
  readonly coreBusy: readonly number[];
}

/** Which core the SUT and the load generator were pinned to, or null when nothing was pinned. */
export interface Placement {
  readonly sut: number;
  readonly load: number;
}

/**
 * Why a run's req/s says nothing about its SUT, or null when it does. The load generator's core is
 * full when the load generator and upstream together, or anyone on that core, used ≥ SATURATED of it.
 * The SUT was starved when its core was full but others (not the SUT) used at least the remaining
 * 1 − SATURATED of it. Unpinned, only a machine with every core full is flagged.
 */
export function heldBack(use: CoreUse, placement: Placement | null): string | null {
  const busy = (core: number) => use.coreBusy[core] ?? Number.NaN;
  if (placement === null) {
    const all = use.coreBusy.length > 0 && use.coreBusy.every((b) => b >= SATURATED);
    if (use.harness >= SATURATED) return 'load generator saturated';
    return all ? 'every core saturated' : null;
  }
  if (use.harness >= SATURATED || busy(placement.load) >= SATURATED) return 'load generator saturated';
  if (busy(placement.sut) >= SATURATED && busy(placement.sut) - use.sut >= 1 - SATURATED)
    return 'SUT starved (others on its core)';
  return null;
}

export type Verdict = 'met' | 'MISSED' | 'INVALID' | '';

/**
 * A throughput ratio's verdict: INVALID when either side was held back (whatever the value), else met
 * or MISSED against its floor, or '' when it has none.
 */
export function throughputVerdict(
  value: number,
  floor: number | undefined,
  reasons: readonly string[],
): Verdict {
  if (reasons.length > 0) return 'INVALID';
  if (floor === undefined || !Number.isFinite(value)) return '';
  return value >= floor ? 'met' : 'MISSED';
}

/** A cost's verdict against its ceiling (CPU per response, lower is better). */
export function ceilingVerdict(value: number, ceiling: number | undefined): Verdict {
  if (ceiling === undefined || !Number.isFinite(value)) return '';
  return value <= ceiling ? 'met' : 'MISSED';
}
