// GET /status/ID, GET /result/ID?format= and DELETE /jobs/ID. An id that is not of the shape we
// mint is answered 404 before it reaches Redis or the filesystem.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from '../errors.js';
import { CONTENT_TYPE, isResultFormat, render, type Transcript } from '../jobs/format.js';
import { isJobId } from '../jobs/ids.js';
import type { ApiDeps } from './deps.js';
import { sendJson, sendText } from './respond.js';

const notFound = () => new ApiError('not_found', 'Not found');

export async function handleStatus(id: string, res: ServerResponse, deps: ApiDeps): Promise<void> {
  if (!isJobId(id)) throw notFound();
  const status = await deps.store.status(id);
  if (!status) throw notFound();
  // A queued job on a backend that cannot run it would otherwise look like a slow queue.
  const notice = status.state === 'queued' && deps.engineNotice ? await deps.engineNotice() : null;
  sendJson(res, 200, notice ? { ...status, notice } : status);
}

export async function handleResult(id: string, url: URL, res: ServerResponse, deps: ApiDeps): Promise<void> {
  if (!isJobId(id)) throw notFound();
  const record = await deps.store.get(id);
  if (!record) throw notFound();
  const requested = url.searchParams.get('format');
  if (requested !== null && !isResultFormat(requested)) {
    throw new ApiError(
      'bad_request',
      `format must be json, txt, srt or vtt; got ${JSON.stringify(requested)}`,
    );
  }
  const { status } = record;
  if (status.state === 'failed') {
    throw new ApiError('job_failed', status.error?.message ?? 'The job failed', {
      code: status.error?.code ?? null,
    });
  }
  if (status.state !== 'completed') throw new ApiError('not_ready', 'Not ready', { state: status.state });
  const json = await deps.store.resultJson(id);
  if (json === null) throw notFound();
  const format = requested ?? record.format ?? 'json';
  // The stored transcript is the json format already: send it as stored.
  const body = format === 'json' ? json : render(JSON.parse(json) as Transcript, format);
  sendText(res, 200, CONTENT_TYPE[format], body);
}

/** Cancels and deletes: the status and result, the queue entry, the checkpoints and the files. */
export async function handleDelete(id: string, _req: IncomingMessage, res: ServerResponse, deps: ApiDeps) {
  if (!isJobId(id)) throw notFound();
  // Deleting the status first is what stops the job: every write a worker makes for it is
  // conditional on it, and the runner checks it between segments. The message stops it now.
  if (!(await deps.store.delete(id))) throw notFound();
  await deps.publishCancel(id);
  await deps.queue.remove(id);
  await Promise.all([deps.checkpoints.deleteAll(id), deps.paths.removeJobFiles(id)]);
  deps.logger.info({ job_id: id }, 'job deleted');
  res.writeHead(204, { 'cache-control': 'no-store' });
  res.end();
}
