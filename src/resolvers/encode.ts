import { encodeTextWith, encodeVectorsOf, hookActivationsOf } from '../app/encode.js';
import type { FeatureActivationResolvers, QueryResolvers } from './generated.js';

export const encodeResolvers = {
  Query: {
    hookActivations: (_, args, ctx) => hookActivationsOf(ctx.database, ctx.services.encoding, args),
    encodeVectors: (_, args, ctx) => encodeVectorsOf(ctx.database, ctx.services.encoding, args),
    encode: async (_, args, ctx) =>
      (await encodeTextWith(ctx.database, ctx.services.encoding, { ...args, dictionaries: [args.dictionary] }))[0],
    encodeMany: (_, args, ctx) => encodeTextWith(ctx.database, ctx.services.encoding, args),
  } satisfies QueryResolvers,
  FeatureActivation: {
    feature: async (f, _, ctx) => (await ctx.loaders.feature.load(f))!,
  } satisfies FeatureActivationResolvers,
};
