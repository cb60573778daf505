import type { Context } from './context.js';
import type { DictionaryRow } from '../db/catalog.js';
import type { FeatureRow } from '../db/features.js';
import { quantileBands } from '../app/dashboards.js';

export const dashboardResolvers = {
  Feature: {
    histogram: (f: FeatureRow) => f.histogram ?? null,
    topActivations: async (f: FeatureRow, args: { first: number }, ctx: Context) =>
      (await ctx.loaders.topActivations.load(f)).slice(0, args.first),
    quantileExamples: async (f: FeatureRow, _: unknown, ctx: Context) =>
      quantileBands(f, await ctx.loaders.quantileExamples.load(f)),
    logits: (f: FeatureRow, _: unknown, ctx: Context) => ctx.loaders.logits.load(f),
  },
  Dictionary: {
    stats: (d: DictionaryRow) => d.stats ?? null,
  },
};
