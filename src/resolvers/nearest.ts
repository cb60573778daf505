import type { QueryResolvers } from './generated.js';

export const searchResolvers = {
  Query: {
    nearestFeatures: async (_, args, ctx) => {
      const { hits, plans } = await ctx.services.nearest.find(ctx.database, args);
      ctx.searchPlans.push(...plans);
      return Promise.all(
        hits.map(async (h) => ({
          feature: (await ctx.loaders.feature.load({ dictionaryId: h.dictionaryId, index: h.index }))!,
          cosine: h.cosine,
        })),
      );
    },
  } satisfies QueryResolvers,
};
