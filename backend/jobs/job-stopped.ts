// Why a running job was stopped from outside: the reason its AbortSignal carries, and what the
// worker does about it (cancelled: clean up; shutdown: checkpoint and hand back; lease_lost:
// another worker owns the job now, so touch nothing).

export type StopReason = 'cancelled' | 'shutdown' | 'lease_lost';

export class JobStopped extends Error {
  readonly isJobStopped = true;
  constructor(readonly reason: StopReason) {
    super(`job stopped: ${reason}`);
    this.name = 'JobStopped';
  }
}

export function isJobStopped(error: unknown, reason?: StopReason): error is JobStopped {
  if (
    typeof error !== 'object' ||
    error === null ||
    (error as { isJobStopped?: unknown }).isJobStopped !== true
  ) {
    return false;
  }
  return reason === undefined || (error as JobStopped).reason === reason;
}
