// Why a running job was stopped from outside: the reason its AbortSignal carries, and what the
// worker does about it (cancelled: clean up; shutdown: checkpoint and hand back; lease_lost:
// another worker owns the job now, so touch nothing).
import { FloodgateError, hasBrand } from '../../core/errors.js';

export type StopReason = 'cancelled' | 'shutdown' | 'lease_lost';

/** Its code is the reason. */
export class JobStopped extends FloodgateError<StopReason> {
  constructor(readonly reason: StopReason) {
    super('JobStopped', reason, `job stopped: ${reason}`);
  }
}

export function isJobStopped(error: unknown, reason?: StopReason): error is JobStopped {
  return hasBrand(error, 'JobStopped') && (reason === undefined || (error as JobStopped).reason === reason);
}
