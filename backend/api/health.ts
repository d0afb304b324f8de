// GET /healthz (the process answers), /readyz (Redis and the whisper engine) and /metrics.
import type { ServerResponse } from 'node:http';
import type { ApiDeps } from './deps.js';
import { sendJson, sendText } from './respond.js';

export function handleHealthz(res: ServerResponse): void {
  sendJson(res, 200, { status: 'ok' });
}

export async function handleReadyz(res: ServerResponse, deps: ApiDeps): Promise<void> {
  const { ready, checks } = await deps.readiness();
  sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', ...checks });
}

export async function handleMetrics(res: ServerResponse, deps: ApiDeps): Promise<void> {
  const registry = deps.metrics.registry;
  sendText(res, 200, registry.contentType, await registry.metrics());
}
