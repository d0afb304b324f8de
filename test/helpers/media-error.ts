// Awaits a promise that must reject with a MediaError, and hands the error back for its code.
import { expect } from 'vitest';
import { isMediaError, type MediaError } from '../../backend/media/errors.js';

export async function mediaFailure(promise: Promise<unknown>): Promise<MediaError> {
  const err = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(isMediaError(err)).toBe(true);
  return err as MediaError;
}
