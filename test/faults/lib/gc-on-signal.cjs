// Preloaded into the soak's proxy and backend (NODE_OPTIONS="--expose-gc --require …"): SIGUSR2 runs a
// full garbage collection, so that the RSS sampled right after it is memory the process keeps, not
// garbage waiting for V8's next major collection. Test-only; the product never sees it.
process.on('SIGUSR2', () => {
  if (typeof globalThis.gc === 'function') globalThis.gc();
});
