import type { Context } from './context.js';
import type { FeatureRow } from '../db/features.js';
import { explanationTextProblem, featureProblems, insertExplanations, type ExplanationRow } from '../db/explanations.js';

interface UserError {
  field: string[];
  message: string;
  code: 'NOT_FOUND' | 'BAD_USER_INPUT';
}

export const explanationResolvers = {
  Mutation: {
    addExplanation: async (_: unknown, args: { dictionary: string; index: number; text: string }, ctx: Context) => {
      const caller = await ctx.auth.require();
      const userErrors: UserError[] = [];
      const textProblem = explanationTextProblem(args.text);
      if (textProblem) userErrors.push({ field: ['text'], message: textProblem, code: 'BAD_USER_INPUT' });
      const [featureProblem] = await featureProblems(ctx.database, [{ dictionaryId: args.dictionary, index: args.index }]);
      if (featureProblem) {
        const unknownDictionary = featureProblem.startsWith('No dictionary');
        userErrors.push({ field: [unknownDictionary ? 'dictionary' : 'index'], message: featureProblem, code: 'NOT_FOUND' });
      }
      if (userErrors.length) return { explanation: null, userErrors };
      const [explanation] = await insertExplanations(ctx.database, [
        { dictionaryId: args.dictionary, index: args.index, text: args.text, source: 'api', author: caller.keyName },
      ]);
      return { explanation, userErrors };
    },
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
