// The one shape of Floodgate's error classes: a stable `code` that callers branch on (never the
// message), and a brand naming the class, checked by that class's type guard. The brand sits under a
// Symbol.for key, so an error made by a second copy of a module (two installs, a test's fresh import)
// still passes its guard, where instanceof would not.

const BRAND = Symbol.for('floodgate.error');

export abstract class FloodgateError<Code extends string = string> extends Error {
  /** The class's name; what `hasBrand` compares. */
  readonly [BRAND]: string;

  constructor(
    brand: string,
    readonly code: Code,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = brand;
    this[BRAND] = brand;
  }
}

/** True when `error` is a FloodgateError whose class is branded `brand`, from any copy of its module. */
export function hasBrand(error: unknown, brand: string): boolean {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[BRAND] === brand;
}
