/** Dictionary comparisons, feature families and feature maps: thin over src/app and the loaders. */
import type { Context } from './context.js';
import type { DictionaryRow } from '../db/catalog.js';
import type { FeatureRow } from '../db/features.js';
import type { ComparisonRow, FamilyRow, MatchRow, MatchOrder } from '../db/comparisons.js';
import type { FeatureMapRow, MapPoint } from '../db/feature-maps.js';
import { compareDictionaries, comparisonMatches } from '../app/compare.js';
import { mapPoints } from '../app/feature-map.js';
import { AtlasError } from '../errors.js';
import { decodeCursor, encodeCursor, pageInfo } from './connection.js';

/** A stored comparison seen from the order the caller asked for (it may be stored as (b, a)). */
interface ComparisonView {
  row: ComparisonRow;
  a: string;
  b: string;
}

interface MapView {
  row: FeatureMapRow;
  dSae: number;
}

const swapped = (v: ComparisonView) => v.row.dictionaryA !== v.a;

async function dictionaryOrThrow(ctx: Context, id: string): Promise<DictionaryRow> {
  const d = await ctx.loaders.dictionary.load(id);
  if (!d) throw new AtlasError('NOT_FOUND', `No dictionary "${id}".`);
  return d;
}

async function featureOf(ctx: Context, dictionaryId: string, index: number): Promise<FeatureRow> {
  return (await ctx.loaders.feature.load({ dictionaryId, index }))!;
}

export const compareResolvers = {
  Query: {
    compareDictionaries: async (_: unknown, args: { a: string; b: string }, ctx: Context): Promise<ComparisonView> => {
      await Promise.all([dictionaryOrThrow(ctx, args.a), dictionaryOrThrow(ctx, args.b)]);
      const { comparison } = await compareDictionaries(ctx.database, {
        a: args.a,
        b: args.b,
        session: ctx.services.session,
      });
      return { row: comparison, a: args.a, b: args.b };
    },
  },
  DictionaryComparison: {
    a: (v: ComparisonView, _: unknown, ctx: Context) => dictionaryOrThrow(ctx, v.a),
    b: (v: ComparisonView, _: unknown, ctx: Context) => dictionaryOrThrow(ctx, v.b),
    meanMaxCosineAB: (v: ComparisonView) => (swapped(v) ? v.row.summary.meanMaxBA : v.row.summary.meanMaxAB),
    meanMaxCosineBA: (v: ComparisonView) => (swapped(v) ? v.row.summary.meanMaxAB : v.row.summary.meanMaxBA),
    histogram: (v: ComparisonView) => (swapped(v) ? v.row.summary.histogramBA : v.row.summary.histogramAB),
    oneToOne: (v: ComparisonView) => v.row.summary.oneToOne,
    seconds: (v: ComparisonView) => v.row.summary.seconds,
    computedAt: (v: ComparisonView) => new Date(v.row.createdAt).toISOString(),
    matches: async (
      v: ComparisonView,
      args: { first: number; after?: string | null; order: MatchOrder },
      ctx: Context,
    ) => {
      const after = args.after ? decodeCursor(args.after) : null;
      const page = await comparisonMatches(ctx.database, v.row.id, v.a, {
        order: args.order,
        first: args.first,
        after,
      });
      const edges = page.rows.map((r) => ({
        cursor: encodeCursor({ value: args.order === 'INDEX' ? null : r.cosine, index: r.index }),
        node: r,
      }));
      return {
        edges,
        pageInfo: pageInfo(
          edges.map((e) => e.cursor),
          page.hasNextPage,
          after,
        ),
      };
    },
  },
  FeatureMatch: {
    feature: (m: MatchRow, _: unknown, ctx: Context) => featureOf(ctx, m.dictionaryId, m.index),
    match: (m: MatchRow, _: unknown, ctx: Context) => featureOf(ctx, m.otherDictionaryId, m.matchIndex),
    paired: (m: MatchRow, _: unknown, ctx: Context) =>
      m.pairedIndex === null ? null : featureOf(ctx, m.otherDictionaryId, m.pairedIndex),
    // Family entries only: the child's share of its parent's firing tokens in the build of both.
    coActivation: (m: MatchRow | FamilyRow) =>
      'parentTokens' in m && m.parentTokens ? m.bothTokens! / m.parentTokens : null,
    coFiringTokens: (m: MatchRow | FamilyRow) => ('bothTokens' in m ? m.bothTokens : null),
  },
  Feature: {
    related: (f: FeatureRow, _: unknown, ctx: Context) => ctx.loaders.related.load(f),
    family: async (f: FeatureRow, args: { dictionary: string; minCosine: number }, ctx: Context) => {
      await dictionaryOrThrow(ctx, args.dictionary);
      const rows = await ctx.loaders.family.load({
        dictionaryId: f.dictionaryId,
        index: f.index,
        otherDictionaryId: args.dictionary,
      });
      return rows.filter((r) => r.cosine >= args.minCosine);
    },
    mapPoint: async (f: FeatureRow, _: unknown, ctx: Context) => {
      const p = await ctx.loaders.mapPoint.load(f);
      return p && { ...p, dictionaryId: f.dictionaryId };
    },
  },
  Dictionary: {
    map: async (d: DictionaryRow, _: unknown, ctx: Context): Promise<MapView | null> => {
      const row = await ctx.loaders.featureMap.load(d.id);
      return row && { row, dSae: d.dSae };
    },
  },
  FeatureMap: {
    bounds: (m: MapView) => m.row,
    neighbours: (m: MapView) => m.row.params.neighbours,
    epochs: (m: MapView) => m.row.params.epochs,
    seed: (m: MapView) => m.row.params.seed,
    computedAt: (m: MapView) => new Date(m.row.createdAt).toISOString(),
    points: async (m: MapView, args: { first: number; after?: string | null }, ctx: Context) => {
      const after = args.after ? decodeCursor(args.after) : null;
      const page = await mapPoints(ctx.database, m.row.dictionaryId, args.first, after?.index ?? -1);
      const nodes = page.points.map((p) => ({ ...p, dictionaryId: m.row.dictionaryId }));
      const cursors = nodes.map((p) => encodeCursor({ value: null, index: p.index }));
      return {
        nodes,
        pageInfo: pageInfo(cursors, page.hasNextPage, after),
        totalCount: m.dSae,
      };
    },
  },
  MapPoint: {
    feature: (p: MapPoint & { dictionaryId: string }, _: unknown, ctx: Context) =>
      featureOf(ctx, p.dictionaryId, p.index),
  },
};
