// A bound on one step of a shutdown: a peer that never answers must not keep the process alive.

/** Resolves when `p` settles or `ms` have passed, whichever comes first; never rejects. */
export function within(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    p.then(
      () => resolve(),
      () => resolve(),
    ).finally(() => clearTimeout(timer));
  });
}
