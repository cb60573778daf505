import { searchFeatures, searchExplanations } from '../app/search.js';
import type { QueryResolvers } from './generated.js';

export const searchFeatureResolvers = {
  Query: {
    searchFeatures: async (_, args, ctx) => {
      const hits = await searchFeatures(
        ctx.database,
        ctx.services.encoding,
        args,
        ctx.services.hnswEfSearch,
        ctx.skippedDictionaries,
      );
      for (const h of hits) ctx.loaders.feature.prime(h.feature, h.feature);
      return hits;
    },
    searchExplanations: (_, args, ctx) => searchExplanations(ctx.database, args),
  } satisfies QueryResolvers,
};
