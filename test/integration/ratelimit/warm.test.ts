// A store warms its Redis before the first decision: both limiter scripts are cached on the server, so
// a cold start neither pays a NOSCRIPT round trip nor risks store.timeout on it.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { projectPath } from '../../../core/paths.js';
import { RedisRateLimitStore } from '../../../proxy/ratelimit/redis-store.js';
import { startPrivateRedis } from '../../helpers/redis-server.js';

const sha = (name: string): string =>
  createHash('sha1')
    .update(readFileSync(projectPath('proxy', 'ratelimit', 'lua', `${name}.lua`), 'utf8'))
    .digest('hex');

describe('RedisRateLimitStore.warm', () => {
  it('loads both limiter scripts on a server that holds neither', async () => {
    // A server of its own: on the shared one, another test could load the scripts meanwhile.
    const server = await startPrivateRedis();
    const redis = new Redis(server.url);
    try {
      const shas = [sha('sliding-log'), sha('sliding-counter')];
      expect(await redis.script('EXISTS', ...shas)).toEqual([0, 0]);
      await new RedisRateLimitStore({ redis, prefix: 'warm-test:' }).warm();
      expect(await redis.script('EXISTS', ...shas)).toEqual([1, 1]);
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });
});
