import type { Context } from './context.js';
import { searchFeatures, searchExplanations, type SearchScope } from '../app/search.js';

type SearchArgs = SearchScope & { query: string; first: number };

export const searchFeatureResolvers = {
  Query: {
    searchFeatures: async (_: unknown, args: SearchArgs, ctx: Context) => {
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
    searchExplanations: (_: unknown, args: SearchArgs, ctx: Context) => searchExplanations(ctx.database, args),
  },
};
