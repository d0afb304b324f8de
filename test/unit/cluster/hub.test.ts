// The primary's side of a cluster, with no processes: batches in, answers out, on real breakers and a
// real memory store under a manual clock.
import { describe, expect, it } from 'vitest';
import { BreakerRegistry } from '../../../core/breaker/registry.js';
import { ManualClock } from '../../../core/clock.js';
import { ClusterHub } from '../../../proxy/cluster/hub.js';
import type { Batch } from '../../../proxy/cluster/messages.js';
import { MemoryRateLimitStore } from '../../../proxy/ratelimit/memory-store.js';
import type { WindowSpec } from '../../../proxy/ratelimit/store.js';

const WINDOWS: readonly WindowSpec[] = [{ name: 'hourly', limit: 3, windowMs: 3_600_000 }];

let seq = 0;
function batch(parts: Partial<Omit<Batch, 't' | 'seq'>>): Batch {
  return { t: 'batch', seq: ++seq, specs: [], calls: [], admits: [], outcomes: [], ...parts };
}

function setup(
  breaker = { failureThreshold: 2, timeoutMs: 1_000, halfOpenMaxCalls: 1, successThreshold: 1 },
) {
  const clock = new ManualClock();
  const breakers = new BreakerRegistry({ clock });
  breakers.sync({ app: breaker });
  const store = new MemoryRateLimitStore({ clock });
  const hub = new ClusterHub({ breakers, store: () => store, clock });
  return { clock, breakers, store, hub, app: breakers.get('app')! };
}

describe('ClusterHub', () => {
  it('decides every worker on one store: a limit of 3 holds across two workers', () => {
    const { hub } = setup();
    const hits = (worker: number, spec: number, n: number) =>
      hub
        .serve(
          worker,
          batch({
            specs: [[spec, WINDOWS.map((w) => ({ ...w }))]],
            calls: Array.from({ length: n }, () => ({
              op: 'hit' as const,
              key: 'k',
              spec,
              algorithm: 'sliding-log' as const,
              cost: 1,
            })),
          }),
        )
        .decisions.map((d) => d?.allowed);
    // Each worker names its window set with its own id, and sends its own copy of it.
    expect(hits(1, 0, 2)).toEqual([true, true]);
    expect(hits(2, 7, 2)).toEqual([true, false]);
    expect(hits(1, 0, 1)).toEqual([false]);
  });

  it("counts each call's cost, and answers null for a cost the store refuses", () => {
    const { hub } = setup();
    const call = (cost: number) => ({
      op: 'hit' as const,
      key: 'c',
      spec: 0,
      algorithm: 'sliding-log' as const,
      cost,
    });
    const a = hub.serve(1, batch({ specs: [[0, WINDOWS]], calls: [call(2), call(2), call(1), call(0)] }));
    expect(a.decisions.map((d) => d && [d.allowed, d.windows[0]!.remaining])).toEqual([
      [true, 1],
      [false, 1],
      [true, 0],
      null,
    ]);
  });

  it('answers null for a call on a window set it was never told of', () => {
    const { hub } = setup();
    const a = hub.serve(
      1,
      batch({ calls: [{ op: 'hit', key: 'k', spec: 3, algorithm: 'sliding-log', cost: 1 }] }),
    );
    expect(a.decisions).toEqual([null]);
  });

  it('trips on failures reported by different workers, and ignores outcomes of an earlier state', () => {
    const { hub, app, clock } = setup();
    const ticket = app.generation;
    hub.serve(1, batch({ outcomes: [['app', ticket, 'failure', 5]] }));
    expect(app.state).toBe('CLOSED');
    hub.serve(2, batch({ outcomes: [['app', ticket, 'failure', 5]] }));
    expect(app.state).toBe('OPEN');
    // A failure admitted while CLOSED, reported late: counted, but it moves nothing.
    hub.serve(2, batch({ outcomes: [['app', ticket, 'failure', 5]] }));
    expect(app.getMetrics()).toMatchObject({ state: 'OPEN', failure_count: 3 });
    // What the workers mirror: OPEN until the timeout, under the ticket a probe will need.
    expect(hub.states()).toEqual([
      { name: 'app', state: 'OPEN', generation: app.generation, halfOpenAt: clock.now() + 1_000 },
    ]);
  });

  it('hands out HALF_OPEN probe slots, and takes back those of a worker that died', () => {
    const { hub, app, clock } = setup();
    app.recordFailure();
    app.recordFailure();
    expect(app.state).toBe('OPEN');
    expect(hub.serve(1, batch({ admits: ['app'] })).admits).toEqual([null]);
    clock.advance(1_000);
    const [probe] = hub.serve(1, batch({ admits: ['app'] })).admits;
    expect(probe).toBe(app.generation);
    expect(app.state).toBe('HALF_OPEN');
    // The one slot is taken: worker 2 is refused.
    expect(hub.serve(2, batch({ admits: ['app'] })).admits).toEqual([null]);
    // Worker 1 dies holding it; without forget() the breaker would wait for it for ever.
    hub.forget(1);
    const [again] = hub.serve(2, batch({ admits: ['app'] })).admits;
    expect(again).toBe(app.generation);
    hub.serve(2, batch({ outcomes: [['app', again!, 'success', 3]] }));
    expect(app.state).toBe('CLOSED');
  });

  it('releases nothing for a worker whose probe already ended', () => {
    const { hub, app, clock } = setup({
      failureThreshold: 1,
      timeoutMs: 1_000,
      halfOpenMaxCalls: 2,
      successThreshold: 2,
    });
    app.recordFailure();
    clock.advance(1_000);
    const [t] = hub.serve(1, batch({ admits: ['app'] })).admits;
    hub.serve(1, batch({ outcomes: [['app', t!, 'success', 1]] }));
    const [u] = hub.serve(2, batch({ admits: ['app'] })).admits;
    expect(u).not.toBeNull();
    // Worker 1 holds nothing now: forgetting it must not free worker 2's slot.
    hub.forget(1);
    const [v] = hub.serve(3, batch({ admits: ['app'] })).admits;
    expect(v).not.toBeNull();
    expect(hub.serve(3, batch({ admits: ['app'] })).admits).toEqual([null]);
  });
});
