// The containers' HEALTHCHECK (Dockerfile.proxy, Dockerfile.backend): GET one URL and exit 0 on a 2xx,
// 1 otherwise. The slim Node images have no curl or wget, and a Node one-liner in the Dockerfile
// would be untested; this is compiled with the rest and tested in test/unit/packaging.
//
//   node dist/cli/healthcheck.js http://127.0.0.1:9090/healthz
const url = process.argv[2] ?? 'http://127.0.0.1:9090/healthz';
const TIMEOUT_MS = 2_000;

try {
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  await res.body?.cancel();
  if (!res.ok) process.stderr.write(`healthcheck: ${url} answered ${res.status}\n`);
  process.exitCode = res.ok ? 0 : 1;
} catch (err) {
  process.stderr.write(`healthcheck: ${url}: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
