/** Cheap deterministic uniform values in [-scale, scale) (xorshift): random weights for timing runs. */
export function uniform(count: number, scale: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = (s / 4294967296 * 2 - 1) * scale;
  }
  return out;
}
