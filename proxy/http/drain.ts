// Stopping a data plane without dropping what it is serving: stop taking connections, let in-flight
// requests finish for a while, then cut whatever is left. A single proxy and each cluster worker
// stop this way.
import { within } from '../within.js';
import type { DataPlane } from './server.js';

/** How often the drain looks at what is still in flight. */
const POLL_MS = 25;

/**
 * Closes the listener, waits up to `drainMs` for in-flight requests, then closes every connection and
 * tunnel. Resolves once the listener has closed, or `stepMs` after the drain if it does not.
 */
export async function drainDataPlane(dataPlane: DataPlane, drainMs: number, stepMs: number): Promise<void> {
  const closed = new Promise<void>((r) => dataPlane.server.close(() => r()));
  dataPlane.server.closeIdleConnections();
  const deadline = Date.now() + drainMs;
  while (dataPlane.pending > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    dataPlane.server.closeIdleConnections();
  }
  dataPlane.server.closeAllConnections();
  dataPlane.closeTunnels();
  // Past the drain, a socket or peer that does not answer must not keep the process from exiting.
  await within(closed, stepMs);
}
