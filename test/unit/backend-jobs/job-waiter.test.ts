import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { JobState, JobStatus } from '../../../backend/jobs/job-store.js';
import { JobWaiter } from '../../../backend/jobs/job-waiter.js';
import { waitFor } from '../../helpers/wait.js';

/** A job store holding only states, counting its round trips. */
function fakeStore(states: Record<string, JobState | null>) {
  const store = {
    reads: 0,
    fail: false,
    async statuses(ids: readonly string[]): Promise<(JobStatus | null)[]> {
      store.reads++;
      if (store.fail) throw new Error('redis down');
      return ids.map((id) => {
        const state = states[id];
        return state ? ({ job_id: id, state } as JobStatus) : null;
      });
    },
  };
  return store;
}

describe('JobWaiter', () => {
  it('answers at once for a job that has already ended, and stops polling when nobody waits', async () => {
    const store = fakeStore({ a: 'completed' });
    const waiter = new JobWaiter({ store, pollMs: 5 });
    const outcome = await waiter.wait('a', { timeoutMs: 60_000 });
    expect(outcome).toMatchObject({ kind: 'ended', status: { state: 'completed' } });
    expect(store.reads).toBe(1);
    expect(waiter.size).toBe(0);
    await waitFor(() => !waiter.active, { what: 'the poller to stop' });
  });

  it('polls every waited job in one read per tick until it ends', async () => {
    const states: Record<string, JobState | null> = { a: 'running', b: 'queued' };
    const store = fakeStore(states);
    const waiter = new JobWaiter({ store, pollMs: 5 });
    const a = waiter.wait('a', { timeoutMs: 60_000 });
    const b = waiter.wait('b', { timeoutMs: 60_000 });
    const a2 = waiter.wait('a', { timeoutMs: 60_000 });
    expect(waiter.size).toBe(3);
    await waitFor(() => store.reads >= 3, { what: 'a few ticks' });
    states.a = 'failed';
    states.b = null;
    expect(await a).toMatchObject({ kind: 'ended', status: { state: 'failed' } });
    expect(await a2).toMatchObject({ kind: 'ended', status: { state: 'failed' } });
    expect(await b).toEqual({ kind: 'gone' });
    await waitFor(() => !waiter.active, { what: 'the poller to stop' });
  });

  it('times out by its own deadline, keeps waiting through read errors', async () => {
    let now = 0;
    const errors: unknown[] = [];
    const store = fakeStore({ a: 'running' });
    store.fail = true;
    const waiter = new JobWaiter({ store, pollMs: 5, now: () => now, onError: (e) => errors.push(e) });
    const outcome = waiter.wait('a', { timeoutMs: 1_000 });
    await waitFor(() => errors.length >= 2, { what: 'failed reads' });
    expect(waiter.size).toBe(1);
    now = 1_000;
    expect(await outcome).toEqual({ kind: 'timeout' });
  });

  it('an aborted wait leaves no listener, no waiter and no timer behind', async () => {
    const store = fakeStore({ a: 'running' });
    const waiter = new JobWaiter({ store, pollMs: 5 });
    const gone = new AbortController();
    const outcome = waiter.wait('a', { timeoutMs: 60_000, signal: gone.signal });
    expect(getEventListeners(gone.signal, 'abort')).toHaveLength(1);
    await waitFor(() => store.reads >= 2, { what: 'a tick' });
    gone.abort();
    expect(await outcome).toEqual({ kind: 'aborted' });
    expect(getEventListeners(gone.signal, 'abort')).toHaveLength(0);
    expect(waiter.size).toBe(0);
    // No tick is scheduled once the last waiter has left.
    await waitFor(() => !waiter.active, { what: 'the poller to stop' });
    // A signal aborted before the wait never registers.
    expect(await waiter.wait('a', { timeoutMs: 1, signal: gone.signal })).toEqual({ kind: 'aborted' });
  });

  it('a settled wait removes its abort listener too', async () => {
    const waiter = new JobWaiter({ store: fakeStore({ a: 'completed' }), pollMs: 5 });
    const signal = new AbortController().signal;
    await waiter.wait('a', { timeoutMs: 60_000, signal });
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('close ends every wait with closed and refuses new ones', async () => {
    const waiter = new JobWaiter({ store: fakeStore({ a: 'running' }), pollMs: 5 });
    const pending = waiter.wait('a', { timeoutMs: 60_000 });
    waiter.close();
    expect(await pending).toEqual({ kind: 'closed' });
    expect(await waiter.wait('a', { timeoutMs: 60_000 })).toEqual({ kind: 'closed' });
    await waitFor(() => !waiter.active, { what: 'the poller to stop' });
  });
});
