/**
 * Reconstruction quality of x_hat against x, both [n, dIn], summed in float64:
 * - mse = sum (x - x_hat)^2 / (n * dIn)
 * - normalizedMse = sum (x - x_hat)^2 / sum (x - mean_batch(x))^2, where mean_batch is the
 *   per-dimension mean over the n vectors (SAELens: MSE over the variance of x around its batch
 *   mean). null when that variance is 0 (a single vector, or identical vectors).
 * - explainedVariance = 1 - normalizedMse (null alongside it).
 * - cosine = mean over vectors of x.x_hat / (|x| |x_hat|); a pair with a zero vector counts 1
 *   when both are zero, else 0.
 */
export interface ReconstructionMetrics {
  mse: number;
  normalizedMse: number | null;
  explainedVariance: number | null;
  cosine: number;
}

export function reconstructionMetrics(x: Float32Array, xHat: Float32Array, n: number): ReconstructionMetrics {
  const d = x.length / n;
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let i = 0; i < d; i++) mean[i] += x[r * d + i] / n;
  let resid = 0;
  let total = 0;
  let cosSum = 0;
  for (let r = 0; r < n; r++) {
    let dot = 0;
    let nx = 0;
    let ny = 0;
    for (let i = 0; i < d; i++) {
      const a = x[r * d + i];
      const b = xHat[r * d + i];
      resid += (a - b) ** 2;
      total += (a - mean[i]) ** 2;
      dot += a * b;
      nx += a * a;
      ny += b * b;
    }
    cosSum += nx > 0 && ny > 0 ? dot / Math.sqrt(nx * ny) : nx === 0 && ny === 0 ? 1 : 0;
  }
  const normalizedMse = total > 0 ? resid / total : null;
  return {
    mse: resid / (n * d),
    normalizedMse,
    explainedVariance: normalizedMse === null ? null : 1 - normalizedMse,
    cosine: cosSum / n,
  };
}
