import type { Context } from './context.js';
import type { FeatureRow } from '../db/features.js';
import type { ExplanationRow } from '../db/explanations.js';
import { addExplanation } from '../app/explanations.js';

export const explanationResolvers = {
  Mutation: {
    addExplanation: async (_: unknown, args: { dictionary: string; index: number; text: string }, ctx: Context) =>
      addExplanation(ctx.database, await ctx.auth.require(), args),
  },
  Feature: {
    explanations: (f: FeatureRow, _: unknown, ctx: Context) => ctx.loaders.explanations.load(f),
  },
  Explanation: {
    id: (e: ExplanationRow) => String(e.id),
    feature: async (e: ExplanationRow, _: unknown, ctx: Context) => (await ctx.loaders.feature.load(e))!,
    createdAt: (e: ExplanationRow) => e.createdAt.toISOString(),
  },
};
