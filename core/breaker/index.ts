// The breaker library's public surface: what the proxy's upstreams and the backend's engine import.
export {
  type Breaker,
  type BreakerEvents,
  type BreakerMetrics,
  type BreakerOptions,
  type CallOutcome,
  CircuitBreaker,
  type FailureEvent,
  type StateChange,
  type StateName,
  type TransitionReason,
} from './circuit-breaker.js';
export {
  CIRCUIT_OPEN,
  CircuitBreakerOpenError,
  isCircuitBreakerOpenError,
} from './circuit-breaker-open-error.js';
export {
  AnyOfPolicy,
  ConsecutiveFailuresPolicy,
  FailureRatePolicy,
  type TripPolicy,
  tripPolicyFor,
} from './policies.js';
export { BreakerRegistry, type BreakerSource, type RegistryEvents } from './registry.js';
export {
  type BreakerSettings,
  DEFAULT_BREAKER_SETTINGS,
  type FailureRateSettings,
  type ResolvedBreakerSettings,
} from './settings.js';
