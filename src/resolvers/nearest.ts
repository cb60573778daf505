import { findNearest } from '../app/nearest.js';
import type { QueryResolvers } from './generated.js';

export const searchResolvers = {
  Query: {
    nearestFeatures: async (_, args, ctx) => {
      const hits = await findNearest(ctx.database, args, ctx.services.hnswEfSearch);
      return Promise.all(
        hits.map(async (h) => ({
          feature: (await ctx.loaders.feature.load({ dictionaryId: h.dictionaryId, index: h.index }))!,
          cosine: h.cosine,
        })),
      );
    },
  } satisfies QueryResolvers,
};
