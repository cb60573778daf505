import type { Context } from './context.js';
import type { DictionaryRow } from '../db/catalog.js';
import type { FeatureRow } from '../db/features.js';
import { bandRanges } from '../engine/dashboards/quantile-examples.js';
import { AtlasError } from '../errors.js';

const MAX_TOP = 100;

export const dashboardResolvers = {
  Feature: {
    histogram: (f: FeatureRow) => f.histogram ?? null,
    topActivations: async (f: FeatureRow, args: { first: number }, ctx: Context) => {
      if (!Number.isInteger(args.first) || args.first < 0 || args.first > MAX_TOP) {
        throw new AtlasError('BAD_USER_INPUT', `"first" must be between 0 and ${MAX_TOP}, got ${args.first}.`);
      }
      return (await ctx.loaders.topActivations.load(f)).slice(0, args.first);
    },
    quantileExamples: async (f: FeatureRow, _: unknown, ctx: Context) => {
      const examples = await ctx.loaders.quantileExamples.load(f);
      if (examples.length === 0 || !f.maxActivation) return [];
      return bandRanges(f.maxActivation).map((r) => ({
        band: r.band,
        minActivation: r.lower,
        maxActivation: r.upper,
        examples: examples.filter((e) => e.band === r.band),
      }));
    },
    logits: (f: FeatureRow, _: unknown, ctx: Context) => ctx.loaders.logits.load(f),
  },
  Dictionary: {
    stats: (d: DictionaryRow) => d.stats ?? null,
  },
};
