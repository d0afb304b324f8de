// The backend's Prometheus metrics (the README's "Metrics and logs"). One Registry per backend instance, since tests run
// several in one process. Nothing here is labelled by job id: labels stay bounded.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { BreakerMetrics } from '../core/breaker-metrics.js';

export type JobOutcome = 'completed' | 'failed' | 'cancelled';

// whisper.cpp on ~30 s segments: from well under a second (tiny models) to minutes (large, CPU).
const SEGMENT_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];

export class BackendMetrics {
  readonly registry = new Registry();
  readonly breakers = new BreakerMetrics(this.registry);
  readonly checkpointSaves = new Counter({
    name: 'checkpoint_saves_total',
    help: 'Checkpoints saved',
    registers: [this.registry],
  });
  readonly checkpointRecoveries = new Counter({
    name: 'checkpoint_recoveries_total',
    help: 'Jobs resumed from a checkpoint',
    registers: [this.registry],
  });
  readonly jobs = new Counter({
    name: 'transcription_jobs_total',
    help: 'Transcription jobs that ended, by outcome',
    labelNames: ['status'],
    registers: [this.registry],
  });
  readonly segmentDuration = new Histogram({
    name: 'transcription_segment_duration_seconds',
    help: 'Time whisper took for one segment',
    buckets: SEGMENT_BUCKETS,
    registers: [this.registry],
  });

  readonly waitingRequests = new Gauge({
    name: 'transcription_requests_waiting',
    help: 'POST /v1/audio/transcriptions requests waiting for their job to end',
    registers: [this.registry],
  });

  constructor({ defaultMetrics = true } = {}) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry });
    // Zeroed series exist from the start, so dashboards and rate() see them before the first job.
    for (const status of ['completed', 'failed', 'cancelled'] satisfies JobOutcome[])
      this.jobs.inc({ status }, 0);
  }
}
