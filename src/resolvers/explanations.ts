import { addExplanation } from '../app/explanations.js';
import { explanationId } from './node.js';
import type { ExplanationResolvers, FeatureResolvers, MutationResolvers } from './generated.js';

export const explanationResolvers = {
  Mutation: {
    addExplanation: async (_, args, ctx) => addExplanation(ctx.database, await ctx.auth.require(), args),
  } satisfies MutationResolvers,
  Feature: {
    explanations: (f, _, ctx) => ctx.loaders.explanations.load(f),
  } satisfies FeatureResolvers,
  Explanation: {
    id: explanationId,
    feature: async (e, _, ctx) => (await ctx.loaders.feature.load(e))!,
  } satisfies ExplanationResolvers,
};
