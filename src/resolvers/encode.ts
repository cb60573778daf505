import type { GraphQLResolveInfo, SelectionSetNode } from 'graphql';
import { encodeTextWith, encodeVectorsOf, hookActivationsOf } from '../app/encode.js';
import type { FeatureActivationResolvers, QueryResolvers } from './generated.js';

/**
 * Whether the query reads `field` of the resolved field's value, through fragments too (a field under
 * @skip/@include counts as read): the encoder decodes a reconstruction only for queries that read one.
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

export const encodeResolvers = {
  Query: {
    hookActivations: (_, args, ctx) => hookActivationsOf(ctx.database, ctx.services.encoding, args),
    encodeVectors: (_, args, ctx) => encodeVectorsOf(ctx.database, ctx.services.encoding, args),
    encode: async (_, args, ctx, info) =>
      (
        await encodeTextWith(ctx.database, ctx.services.encoding, {
          ...args,
          dictionaries: [args.dictionary],
          reconstruct: selects(info, 'reconstruction'),
        })
      )[0],
    encodeMany: (_, args, ctx, info) =>
      encodeTextWith(ctx.database, ctx.services.encoding, { ...args, reconstruct: selects(info, 'reconstruction') }),
  } satisfies QueryResolvers,
  FeatureActivation: {
    feature: async (f, _, ctx) => (await ctx.loaders.feature.load(f))!,
  } satisfies FeatureActivationResolvers,
};
