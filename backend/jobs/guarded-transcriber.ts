// The transcription engine as the runner sees it: a Transcriber guarded by the library's
// CircuitBreaker, one breaker around the whisper model. Repeated engine failures open the breaker;
// while it is open, calls fail fast with CircuitBreakerOpenError and jobs wait instead of failing.
import type { Logger } from 'pino';
import { CircuitBreaker } from '../../core/breaker/index.js';
import type { Clock } from '../../core/clock.js';
import { FloodgateError, hasBrand } from '../../core/errors.js';
import { codeOf } from '../errors.js';
import type { Transcriber } from '../media/whisper.js';
import type { BackendMetrics } from '../metrics.js';

export type { TranscribeOptions, Transcriber } from '../media/whisper.js';

export const ENGINE_BREAKER_NAME = 'whisper';

const NOT_ENGINE_FAULTS = new Set(['invalid_audio', 'invalid_argument']);

export interface EngineBreakerOptions {
  clock?: Clock;
  metrics?: BackendMetrics | null;
  logger?: Logger;
  failureThreshold?: number;
  successThreshold?: number;
  timeoutMs?: number;
}

/** A call we abandoned (cancel, shutdown) says nothing about the engine's health. */
class AbandonedCall extends FloodgateError<'abandoned'> {
  constructor(readonly original: unknown) {
    super('AbandonedCall', 'abandoned', 'transcription abandoned');
  }
}

const isAbandonedCall = (error: unknown): error is AbandonedCall => hasBrand(error, 'AbandonedCall');

export function createEngineBreaker(options: EngineBreakerOptions = {}): CircuitBreaker {
  const breaker = new CircuitBreaker({
    name: ENGINE_BREAKER_NAME,
    failureThreshold: options.failureThreshold ?? 5,
    successThreshold: options.successThreshold ?? 2,
    timeoutMs: options.timeoutMs ?? 60_000,
    // One job per worker runs at a time, so one probe at a time is all HALF_OPEN needs.
    halfOpenMaxCalls: 1,
    clock: options.clock,
    // Abandoned calls and bad input say nothing about the engine's health.
    isFailure: (error) => !isAbandonedCall(error) && !NOT_ENGINE_FAULTS.has(codeOf(error) ?? ''),
  });
  const metrics = options.metrics;
  if (metrics) {
    metrics.breakers.setState(ENGINE_BREAKER_NAME, 'CLOSED');
    metrics.breakers.failures.inc({ service: ENGINE_BREAKER_NAME }, 0);
    breaker.on('stateChange', (c) => metrics.breakers.transition(ENGINE_BREAKER_NAME, c.to));
    breaker.on('failure', () => metrics.breakers.failures.inc({ service: ENGINE_BREAKER_NAME }));
  }
  const logger = options.logger;
  if (logger) {
    breaker.on('stateChange', (c) =>
      logger[c.to === 'OPEN' ? 'warn' : 'info'](
        { breaker: c.name, from: c.from, to: c.to, reason: c.reason },
        'engine breaker',
      ),
    );
  }
  return breaker;
}

/** `inner` behind `breaker`. Aborted calls release the breaker's slot without counting. */
export function guardTranscriber(inner: Transcriber, breaker: CircuitBreaker): Transcriber {
  return {
    async transcribe(wavPath, options) {
      try {
        return await breaker.execute(async () => {
          try {
            return await inner.transcribe(wavPath, options);
          } catch (error) {
            throw options?.signal?.aborted ? new AbandonedCall(error) : error;
          }
        });
      } catch (error) {
        throw isAbandonedCall(error) ? error.original : error;
      }
    },
  };
}
