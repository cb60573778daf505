import type { Context } from './context.js';
import type { ModelRow, DictionaryRow } from '../db/catalog.js';
import type { FeatureRow, FeatureOrder, Direction } from '../db/features.js';
import { dictionariesOf, featurePage, listModels, serverInfo } from '../app/catalog.js';
import { AtlasError } from '../errors.js';
import { decodeCursor, encodeCursor, pageInfo } from './connection.js';

async function dictionaryOrThrow(ctx: Context, id: string): Promise<DictionaryRow> {
  const d = await ctx.loaders.dictionary.load(id);
  if (!d) throw new AtlasError('NOT_FOUND', `No dictionary "${id}".`);
  return d;
}

export const catalogResolvers = {
  Query: {
    serverInfo: (_: unknown, __: unknown, ctx: Context) => serverInfo(ctx.database, ctx.services),
    models: (_: unknown, __: unknown, ctx: Context) => listModels(ctx.database),
    model: async (_: unknown, args: { id: string }, ctx: Context) => {
      const m = await ctx.loaders.model.load(args.id);
      if (!m) throw new AtlasError('NOT_FOUND', `No model "${args.id}".`);
      return m;
    },
    dictionaries: (_: unknown, args: { model?: string | null }, ctx: Context) =>
      dictionariesOf(ctx.database, args.model),
    dictionary: (_: unknown, args: { id: string }, ctx: Context) => dictionaryOrThrow(ctx, args.id),
    feature: async (_: unknown, args: { dictionary: string; index: number }, ctx: Context) => {
      const d = await dictionaryOrThrow(ctx, args.dictionary);
      const f = await ctx.loaders.feature.load({ dictionaryId: d.id, index: args.index });
      if (!f) {
        throw new AtlasError(
          'NOT_FOUND',
          `Dictionary "${d.id}" has features 0..${d.dSae - 1}; there is no feature ${args.index}.`,
        );
      }
      return f;
    },
  },
  Model: {
    layers: (m: ModelRow) => m.nLayers,
    // Rows registered before widths were kept hold only d_model-wide hooks.
    hookWidths: (m: ModelRow) => m.hookPoints.map((h) => m.hookWidths[h] ?? m.dModel),
    dictionaries: (m: ModelRow, _: unknown, ctx: Context) => ctx.loaders.dictionariesOfModel.load(m.id),
  },
  Dictionary: {
    model: async (d: DictionaryRow, _: unknown, ctx: Context) => (await ctx.loaders.model.load(d.modelId))!,
    normalization: (d: DictionaryRow) => String(d.params.normalization ?? 'none'),
    skipConnection: (d: DictionaryRow) => d.params.skipConnection === true,
    createdAt: (d: DictionaryRow) => d.createdAt.toISOString(),
    features: async (
      d: DictionaryRow,
      args: { first: number; after?: string | null; orderBy: FeatureOrder; direction?: Direction | null },
      ctx: Context,
    ) => {
      const after = args.after ? decodeCursor(args.after) : null;
      const page = await featurePage(ctx.database, d.id, { ...args, after });
      const edges = page.rows.map((row) => {
        ctx.loaders.feature.prime({ dictionaryId: row.dictionaryId, index: row.index }, row);
        return { cursor: encodeCursor({ value: row.sortValue, index: row.index }), node: row };
      });
      return {
        edges,
        pageInfo: pageInfo(
          edges.map((e) => e.cursor),
          page.hasNextPage,
          after,
        ),
        totalCount: () => ctx.loaders.featureCount.load(d.id),
      };
    },
  },
  Feature: {
    id: (f: FeatureRow) => `${f.dictionaryId}:${f.index}`,
    dictionary: async (f: FeatureRow, _: unknown, ctx: Context) => (await ctx.loaders.dictionary.load(f.dictionaryId))!,
    decoder: async (f: FeatureRow, _: unknown, ctx: Context) => (await ctx.loaders.decoder.load(f))!,
  },
};
