// DELETE /jobs/ID reaches the worker running that job, in whatever process, through Redis
// pub/sub, so it stops at once and kills its whisper process instead of finishing the segment.
// Pub/sub is best effort; the runner's per-segment "does my job still exist" check backs it up.
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

export function cancelChannel(prefix: string): string {
  return `${prefix}cancel`;
}

export async function publishCancel(redis: Redis, prefix: string, id: string): Promise<void> {
  await redis.publish(cancelChannel(prefix), id);
}

/** Calls `onCancel(id)` for every cancellation published under `prefix`, until closed. */
export async function subscribeCancels(
  redisUrl: string,
  prefix: string,
  onCancel: (id: string) => void,
  logger: Logger,
): Promise<{ close(): Promise<void> }> {
  const subscriber = new Redis(redisUrl, { maxRetriesPerRequest: null });
  subscriber.on('error', (err) => logger.warn({ err }, 'cancel subscriber error'));
  const channel = cancelChannel(prefix);
  subscriber.on('message', (ch: string, id: string) => {
    if (ch === channel) onCancel(id);
  });
  await subscriber.subscribe(channel);
  return {
    async close() {
      subscriber.disconnect();
    },
  };
}
