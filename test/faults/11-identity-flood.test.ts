// Fault 11: a flood of new identities against a proxy process whose memory store is small. An identity
// that has spent its quota must stay limited however many junk identities arrive after it: the store
// evicts identities that still have room (least recently used first), never one that is over its
// limit while another is not. Every eviction shows in rate_limit_store_evictions_total.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChildProxy, metrics, metricValue, spawnProxy, tempDir, writePolicy } from '../helpers/proxy.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { formatCounts, maxMs, startLoad, statusCounts } from './lib/load.js';
import { recordFault } from './lib/report.js';

const MAX_KEYS = 1_000;
/** Five times the cap: with plain LRU, the first MAX_KEYS of these would already have pushed C out. */
const FLOOD = 5 * MAX_KEYS;
const LIMIT = 5;

describe('fault 11: identity flood against the memory store', () => {
  let upstream: TestUpstream;
  let proxy: ChildProxy;
  let dir: string;
  const agent = new Agent({ connections: 16 });
  const rows: string[] = [];
  let lost = 0;

  beforeAll(async () => {
    upstream = await startUpstream();
    dir = await tempDir('faults-flood');
    const file = join(dir, 'policy.yaml');
    await writePolicy(file, {
      version: 1,
      store: { type: 'memory', max_keys: MAX_KEYS },
      upstreams: { app: { url: upstream.url } },
      routes: [
        {
          name: 'api',
          match: { path: '/api/*' },
          upstream: 'app',
          limits: { key: 'header:X-Key', hourly: LIMIT, daily: LIMIT },
        },
      ],
    });
    proxy = await spawnProxy(file);
  });

  afterAll(async () => {
    await proxy?.kill();
    await agent.close();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (rows.length > 0) {
      await recordFault({
        fault: `11 Identity flood: ${FLOOD} new X-Key identities against store.max_keys ${MAX_KEYS}`,
        observed: rows.join('; '),
        lost: `${lost} requests of the exhausted identity admitted after the flood`,
      });
    }
  });

  const send = async (key: string): Promise<number> => {
    const r = await request(`${proxy.url}/api/x`, { headers: { 'x-key': key }, dispatcher: agent });
    await r.body.dump();
    return r.statusCode;
  };

  it('an exhausted identity stays limited through five times store.max_keys new identities', async () => {
    const exhausted = 'customer-c';
    const spent: number[] = [];
    for (let i = 0; i <= LIMIT; i++) spent.push(await send(exhausted));
    expect(spent).toEqual([...Array<number>(LIMIT).fill(200), 429]);

    const t0 = performance.now();
    const flood = await startLoad({
      concurrency: 16,
      durationMs: 60_000,
      maxRequests: FLOOD,
      send: async (_worker, i) => ({ status: await send(`junk-${i}`) }),
    }).done;
    const seconds = (performance.now() - t0) / 1000;
    expect(flood).toHaveLength(FLOOD);
    // Each junk identity sent one request, well under its limit.
    expect(statusCounts(flood)).toEqual({ 200: FLOOD });

    const after: number[] = [];
    for (let i = 0; i < 3; i++) after.push(await send(exhausted));
    lost = after.filter((s) => s !== 429).length;
    expect(after).toEqual([429, 429, 429]);

    const text = await metrics(proxy.admin);
    const evictedOpen = metricValue(text, 'rate_limit_store_evictions_total', { limited: 'false' });
    const evictedLimited = metricValue(text, 'rate_limit_store_evictions_total', { limited: 'true' });
    // The store was full after MAX_KEYS identities; every one after that evicted a junk identity.
    expect(evictedOpen).toBe(FLOOD + 1 - MAX_KEYS);
    expect(evictedLimited).toBe(0);
    expect(proxy.child.exitCode).toBeNull();
    rows.push(
      `C spent its ${LIMIT} then got 429; ${FLOOD} junk identities in ${seconds.toFixed(1)} s (${formatCounts(statusCounts(flood))}, max ${Math.round(maxMs(flood))} ms); ` +
        `C afterwards: ${after.join(', ')}; evictions: ${evictedOpen} with room left, ${evictedLimited} limited`,
    );
  });
});
