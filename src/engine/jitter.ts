/**
 * The run's seeded random source. Jitter for a retry is a pure function of the run's seed
 * (recorded in `run_started`) and the execution's key, so replay decides the same delays.
 */

/** FNV-1a 32-bit hash of a string, mixed with a seed. */
function hash(seed: number, key: string): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h;
}

/** A uniform number in [0, 1) determined by `seed` and `key` (mulberry32 finaliser). */
export function jitter(seed: number, key: string): number {
  let t = (hash(seed, key) + 0x6d2b79f5) >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
