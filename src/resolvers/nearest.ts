import type { Context } from './context.js';
import type { NearestArgs } from '../app/nearest.js';

export const searchResolvers = {
  Query: {
    nearestFeatures: async (_: unknown, args: NearestArgs, ctx: Context) => {
      const { hits, plans } = await ctx.services.nearest.find(ctx.database, args);
      ctx.searchPlans.push(...plans);
      const features = await ctx.loaders.feature.loadMany(
        hits.map((h) => ({ dictionaryId: h.dictionaryId, index: h.index })),
      );
      return hits.map((h, i) => ({ feature: features[i], cosine: h.cosine }));
    },
  },
};
