import type { Context } from './context.js';
import { findNearest, type NearestArgs } from '../app/nearest.js';

export const searchResolvers = {
  Query: {
    nearestFeatures: async (_: unknown, args: NearestArgs, ctx: Context) => {
      const hits = await findNearest(ctx.database, args, ctx.services.hnswEfSearch);
      const features = await ctx.loaders.feature.loadMany(
        hits.map((h) => ({ dictionaryId: h.dictionaryId, index: h.index })),
      );
      return hits.map((h, i) => ({ feature: features[i], cosine: h.cosine }));
    },
  },
};
