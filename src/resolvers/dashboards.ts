import type { Context } from './context.js';
import type { DictionaryRow } from '../db/catalog.js';
import type { FeatureRow } from '../db/features.js';
import { quantileBands } from '../app/dashboards.js';
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
    quantileExamples: async (f: FeatureRow, _: unknown, ctx: Context) =>
      quantileBands(f, await ctx.loaders.quantileExamples.load(f)),
    logits: (f: FeatureRow, _: unknown, ctx: Context) => ctx.loaders.logits.load(f),
  },
  Dictionary: {
    stats: (d: DictionaryRow) => d.stats ?? null,
  },
};
