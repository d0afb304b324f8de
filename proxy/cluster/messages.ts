// What a cluster's primary and its workers say to each other over the IPC channel (node:cluster, in
// JSON: plain data only. bench/micro/cluster-store.ts measured it at half the CPU per decision of the
// structured-clone serialization). The primary owns whatever must be one for the whole proxy: the
// policy, the breakers' state and, with `store.type: memory`, the rate limit counters. Workers serve
// requests, and send their primary one batch per event-loop turn.
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { CallOutcome, StateName } from '../../core/breaker/circuit-breaker.js';
import type { Policy } from '../config/schema.js';
import type { Algorithm, Decision, WindowSpec } from '../ratelimit/store.js';

/** One breaker as the primary holds it; sent to every worker on each change. */
export interface BreakerState {
  readonly name: string;
  readonly state: StateName;
  /** The ticket a call admitted now gets (the breaker's epoch). */
  readonly generation: number;
  /** Epoch ms at which an OPEN breaker lets probes through; 0 otherwise. */
  readonly halfOpenAt: number;
}

/** A call on the primary's memory store. `spec`: a window set the worker declared (Batch.specs). */
export interface StoreCall {
  readonly op: 'hit' | 'peek' | 'reset';
  readonly key: string;
  readonly spec: number;
  readonly algorithm: Algorithm;
  /** A hit's cost (1 for peek and reset). */
  readonly cost: number;
}

/** How one admitted call ended: [breaker name, ticket, outcome, duration in ms]. */
export type OutcomeReport = readonly [name: string, ticket: number, outcome: CallOutcome, durationMs: number];

/** Everything a worker has for its primary from one event-loop turn. */
export interface Batch {
  readonly t: 'batch';
  readonly seq: number;
  /** Window sets first used in this batch, by the id the calls refer to them with. */
  readonly specs: readonly (readonly [id: number, windows: readonly WindowSpec[]])[];
  readonly calls: readonly StoreCall[];
  /** Breakers asked to admit a call: those that are not CLOSED (a probe needs the primary's slot). */
  readonly admits: readonly string[];
  readonly outcomes: readonly OutcomeReport[];
}

/** The primary's answer to a Batch, in the same order. A store call that failed answers null. */
export interface Answers {
  readonly t: 'answers';
  readonly seq: number;
  readonly decisions: readonly (Decision | null)[];
  readonly admits: readonly (number | null)[];
}

export type ToPrimary =
  /** A worker is up and wants the policy. */
  | { readonly t: 'hello' }
  | Batch
  /** The worker could not listen (the port is taken, say) and exits. */
  | { readonly t: 'failed'; readonly code: string; readonly message: string }
  /** The worker's shared store (Redis) turned degraded, or healthy again. */
  | { readonly t: 'store'; readonly degraded: boolean }
  /** A policy sent with `policy` is in force. */
  | { readonly t: 'applied'; readonly version: number }
  | {
      readonly t: 'metrics';
      readonly id: number;
      readonly metrics: MetricObjectWithValues<MetricValue<string>>[];
    };

export type ToWorker =
  | {
      readonly t: 'policy';
      readonly policy: Policy;
      readonly version: number;
      readonly breakers: BreakerState[];
    }
  | Answers
  | { readonly t: 'breakers'; readonly states: BreakerState[] }
  | { readonly t: 'scrape'; readonly id: number }
  /** Stop: drain in-flight requests for up to `drainMs`, then exit. */
  | { readonly t: 'drain'; readonly drainMs: number };
