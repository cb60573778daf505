import type { Context } from './context.js';
import { encodeTextWith, encodeVectorsOf, hookActivationsOf, type FeatureActivation } from '../app/encode.js';

type TextArgs = { text: string; topK: number; truncate: boolean };

export const encodeResolvers = {
  Query: {
    hookActivations: (
      _: unknown,
      args: { model: string; text: string; hooks: string[]; truncate: boolean },
      ctx: Context,
    ) => hookActivationsOf(ctx.database, ctx.services.encoding, args),
    encodeVectors: (_: unknown, args: { dictionary: string; vectors: number[][]; topK: number }, ctx: Context) =>
      encodeVectorsOf(ctx.database, ctx.services.encoding, args),
    encode: async (_: unknown, args: TextArgs & { dictionary: string }, ctx: Context) =>
      (await encodeTextWith(ctx.database, ctx.services.encoding, { ...args, dictionaries: [args.dictionary] }))[0],
    encodeMany: (_: unknown, args: TextArgs & { dictionaries: string[] }, ctx: Context) =>
      encodeTextWith(ctx.database, ctx.services.encoding, args),
  },
  FeatureActivation: {
    feature: async (f: FeatureActivation, _: unknown, ctx: Context) => (await ctx.loaders.feature.load(f))!,
  },
};
