import type { GraphQLResolveInfo, SelectionSetNode } from 'graphql';
import { encodeTextWith, encodeVectorsOf, hookActivationsOf, type EncodingParts } from '../app/encode.js';
import type { FeatureActivationResolvers, QueryResolvers } from './generated.js';

/**
 * Whether the query reads `field` of the resolved field's value, through fragments too (a field under
 * @skip/@include counts as read).
 */
function selects(info: GraphQLResolveInfo, field: string): boolean {
  const within = (set: SelectionSetNode | undefined): boolean =>
    (set?.selections ?? []).some((s) =>
      s.kind === 'Field'
        ? s.name.value === field
        : s.kind === 'InlineFragment'
          ? within(s.selectionSet)
          : within(info.fragments[s.name.value]?.selectionSet),
    );
  return info.fieldNodes.some((n) => within(n.selectionSet));
}

/** The parts of an Encoding the query reads: the reconstruction costs a decoder run, topFeatures a ranking. */
function partsOf(info: GraphQLResolveInfo): EncodingParts {
  return { reconstruction: selects(info, 'reconstruction'), topFeatures: selects(info, 'topFeatures') };
}

export const encodeResolvers = {
  Query: {
    hookActivations: (_, args, ctx) => hookActivationsOf(ctx.database, ctx.services.encoding, args),
    encodeVectors: (_, args, ctx) => encodeVectorsOf(ctx.database, ctx.services.encoding, args),
    encode: async (_, args, ctx, info) =>
      (
        await encodeTextWith(ctx.database, ctx.services.encoding, {
          ...args,
          dictionaries: [args.dictionary],
          parts: partsOf(info),
        })
      )[0],
    encodeMany: (_, args, ctx, info) =>
      encodeTextWith(ctx.database, ctx.services.encoding, { ...args, parts: partsOf(info) }),
  } satisfies QueryResolvers,
  FeatureActivation: {
    feature: async (f, _, ctx) => (await ctx.loaders.feature.load(f))!,
  } satisfies FeatureActivationResolvers,
};
