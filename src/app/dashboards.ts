/** Reading a feature's dashboards: its quantile-band examples grouped by the bands of its maximum. */
import type { FeatureRow } from '../db/features.js';
import type { BandExample } from '../db/dashboards.js';
import { bandRanges } from '../engine/dashboards/quantile-examples.js';

export function quantileBands(f: FeatureRow, examples: BandExample[]) {
  if (examples.length === 0 || !f.maxActivation) return [];
  return bandRanges(f.maxActivation).map((r) => ({
    band: r.band,
    minActivation: r.lower,
    maxActivation: r.upper,
    examples: examples.filter((e) => e.band === r.band),
  }));
}
