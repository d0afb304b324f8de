// A worker's channel to its primary, with the channel replaced by a function: one batch per
// event-loop turn, answers routed back in order, and every waiter failed when the primary is gone.
import { describe, expect, it } from 'vitest';
import type { Batch } from '../../../proxy/cluster/messages.js';
import { PrimaryLink } from '../../../proxy/cluster/primary-link.js';
import { RemoteStore } from '../../../proxy/cluster/remote-store.js';
import { isStoreUnavailable } from '../../../proxy/ratelimit/guarded-store.js';
import type { Decision, WindowSpec } from '../../../proxy/ratelimit/store.js';

const W: readonly WindowSpec[] = [{ name: 'hourly', limit: 3, windowMs: 3_600_000 }];
const decision = (allowed: boolean): Decision => ({ allowed, windows: [], now: 1 });
const turn = () => new Promise<void>((r) => setImmediate(r));

describe('PrimaryLink', () => {
  it("sends one batch per turn with that turn's calls, declaring a window set once", async () => {
    const sent: Batch[] = [];
    const link = new PrimaryLink((b) => sent.push(b));
    const a = link.store('hit', 'a', W, 'sliding-log', 1);
    const b = link.store('hit', 'b', W, 'sliding-log', 1);
    const probe = link.admit('app');
    link.report('app', 5, 'failure', 12);
    await turn();
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      specs: [[0, W]],
      calls: [
        { op: 'hit', key: 'a', spec: 0, cost: 1 },
        { op: 'hit', key: 'b', spec: 0, cost: 1 },
      ],
      admits: ['app'],
      outcomes: [['app', 5, 'failure', 12]],
    });
    link.receive({
      t: 'answers',
      seq: sent[0]!.seq,
      decisions: [decision(true), decision(false)],
      admits: [9],
    });
    expect(await a).toEqual(decision(true));
    expect(await b).toEqual(decision(false));
    expect(await probe).toBe(9);

    const c = link.store('peek', 'c', W, 'sliding-log', 1);
    await turn();
    expect(sent).toHaveLength(2);
    expect(sent[1]!.specs).toEqual([]);
    link.receive({ t: 'answers', seq: sent[1]!.seq, decisions: [decision(true)], admits: [] });
    await c;
  });

  it('turns a call the primary could not make into StoreUnavailableError', async () => {
    const sent: Batch[] = [];
    const store = new RemoteStore(new PrimaryLink((b) => sent.push(b)));
    const hit = store.hit('a', W, 'sliding-log');
    await turn();
    (store as unknown as { link: PrimaryLink }).link.receive({
      t: 'answers',
      seq: sent[0]!.seq,
      decisions: [null],
      admits: [],
    });
    const err = await hit.catch((e: unknown) => e);
    expect(isStoreUnavailable(err)).toBe(true);
  });

  it('fails whatever waits, and whatever comes later, once the primary is gone', async () => {
    const sent: Batch[] = [];
    const link = new PrimaryLink((b) => sent.push(b));
    const waiting = link.store('hit', 'a', W, 'sliding-log', 1);
    const queued = link.admit('app');
    link.fail(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    await expect(queued).rejects.toThrow('gone');
    await expect(link.store('hit', 'b', W, 'sliding-log', 1)).rejects.toThrow('gone');
    await turn();
    expect(sent).toHaveLength(0);
  });
});
