/** Feature dashboards and dictionary statistics, with the ids clients cache them by (see node.ts). */
import { quantileBands } from '../app/dashboards.js';
import { featureId } from './node.js';
import { orDefault } from './connection.js';
import type { DictionaryResolvers, FeatureResolvers } from './generated.js';

export const dashboardResolvers = {
  Feature: {
    histogram: (f) => f.histogram && { id: `${featureId(f)}/histogram`, ...f.histogram },
    topActivations: async (f, args, ctx, info) => {
      // Range checked by guardBounds (bounds.ts).
      return (await ctx.loaders.topActivations.load(f)).slice(0, orDefault(args.first, 'first', info));
    },
    quantileExamples: async (f, _, ctx) => quantileBands(f, await ctx.loaders.quantileExamples.load(f)),
    logits: async (f, _, ctx) => {
      const lens = await ctx.loaders.logits.load(f);
      return lens && { id: `${featureId(f)}/logits`, ...lens };
    },
  } satisfies FeatureResolvers,
  Dictionary: {
    stats: (d) => d.stats && { id: `${d.id}/stats`, ...d.stats },
  } satisfies DictionaryResolvers,
};
