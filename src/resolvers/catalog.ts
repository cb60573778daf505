/** Models, dictionaries and features: thin over src/app and the loaders. */
import type { Context } from './context.js';
import type { DictionaryRow } from '../db/catalog.js';
import type { FeatureRow } from '../db/features.js';
import { dictionariesOf, featureDirection, featurePage, listModels, serverInfo } from '../app/catalog.js';
import { AtlasError } from '../errors.js';
import { decodeAfter, encodeCursor, orDefault, pageInfo } from './connection.js';
import { featureId } from './node.js';
import type {
  DictionaryResolvers,
  FeatureConnectionResolvers,
  FeatureEdge,
  FeatureResolvers,
  LabelSource,
  ModelArchitecture,
  ModelFormat,
  ModelResolvers,
  Normalization,
  PageInfo,
  QueryResolvers,
  SaeArchitecture,
  SaeFormat,
} from './generated.js';

export async function dictionaryOrThrow(ctx: Context, id: string): Promise<DictionaryRow> {
  const d = await ctx.loaders.dictionary.load(id);
  if (!d) throw new AtlasError('NOT_FOUND', `No dictionary "${id}".`);
  return d;
}

/** A page of features; totalCount is counted only when asked for. */
export interface FeatureConnectionParent {
  edges: (Omit<FeatureEdge, 'node'> & { node: FeatureRow })[];
  pageInfo: PageInfo;
  dictionaryId: string;
}

/** The catalog stores the lower-case names the file formats use; the schema's enums spell them in capitals. */
const asEnum = <T extends string>(value: string) => value.toUpperCase() as T;

export const catalogResolvers = {
  Query: {
    serverInfo: (_, __, ctx) => serverInfo(ctx.database, ctx.services),
    models: (_, __, ctx) => listModels(ctx.database),
    model: async (_, args, ctx) => {
      const m = await ctx.loaders.model.load(args.id);
      if (!m) throw new AtlasError('NOT_FOUND', `No model "${args.id}".`);
      return m;
    },
    dictionaries: (_, args, ctx) => dictionariesOf(ctx.database, args.model),
    dictionary: (_, args, ctx) => dictionaryOrThrow(ctx, args.id),
    feature: async (_, args, ctx) => {
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
  } satisfies QueryResolvers,
  Model: {
    architecture: (m) => asEnum<ModelArchitecture>(m.architecture),
    sourceFormat: (m) => asEnum<ModelFormat>(m.sourceFormat),
    layers: (m) => m.nLayers,
    // Rows registered before widths were kept hold only d_model-wide hooks.
    hookWidths: (m) => m.hookPoints.map((h) => m.hookWidths[h] ?? m.dModel),
    dictionaries: (m, _, ctx) => ctx.loaders.dictionariesOfModel.load(m.id),
  } satisfies ModelResolvers,
  Dictionary: {
    model: async (d, _, ctx) => (await ctx.loaders.model.load(d.modelId))!,
    architecture: (d) => asEnum<SaeArchitecture>(d.architecture),
    normalization: (d) => asEnum<Normalization>(String(d.params.normalization ?? 'none')),
    sourceFormat: (d) => asEnum<SaeFormat>(d.sourceFormat),
    skipConnection: (d) => d.params.skipConnection === true,
    features: async (d, args, ctx, info) => {
      const orderBy = orDefault(args.orderBy, 'orderBy', info);
      const direction = featureDirection(orderBy, args.direction);
      const ordering = `${orderBy}:${direction}`;
      const after = decodeAfter(args.after, ordering);
      const first = orDefault(args.first, 'first', info);
      const page = await featurePage(ctx.database, d.id, { first, after, orderBy, direction });
      const edges = page.rows.map((row) => {
        ctx.loaders.feature.prime({ dictionaryId: row.dictionaryId, index: row.index }, row);
        return { cursor: encodeCursor(ordering, { value: row.sortValue, index: row.index }), node: row };
      });
      return {
        edges,
        pageInfo: pageInfo(
          edges.map((e) => e.cursor),
          page.hasNextPage,
          after,
        ),
        dictionaryId: d.id,
      };
    },
  } satisfies DictionaryResolvers,
  FeatureConnection: {
    totalCount: (c, _, ctx) => ctx.loaders.featureCount.load(c.dictionaryId),
  } satisfies FeatureConnectionResolvers,
  Feature: {
    id: featureId,
    dictionary: async (f, _, ctx) => (await ctx.loaders.dictionary.load(f.dictionaryId))!,
    labelSource: (f) =>
      f.label === null ? null : f.labelSource === 'auto' ? 'AUTO' : ('CURATED' satisfies LabelSource),
    decoder: async (f, _, ctx) => (await ctx.loaders.decoder.load(f))!,
  } satisfies FeatureResolvers,
};
