// Tests draw their reproducible randomness from the same PRNG as the tiny model generator.
export { seededRandom } from '../../core/prng.js';
