/** Dictionary comparisons, feature families and feature maps: thin over src/app and the loaders. */
import type { Context } from './context.js';
import type { FeatureRow } from '../db/features.js';
import type { ComparisonRow, FamilyRow, MatchRow } from '../db/comparisons.js';
import type { FeatureMapRow, MapPoint } from '../db/feature-maps.js';
import { compareDictionaries, comparisonMatches } from '../app/compare.js';
import { mapPoints } from '../app/feature-map.js';
import { dictionaryOrThrow } from './catalog.js';
import { decodeAfter, encodeCursor, orDefault, pageInfo } from './connection.js';
import { comparisonId } from './node.js';
import type {
  DictionaryComparisonResolvers,
  DictionaryResolvers,
  FeatureMapResolvers,
  FeatureMatchResolvers,
  FeatureResolvers,
  MapPointResolvers,
  QueryResolvers,
} from './generated.js';

/** A stored comparison seen from the order the caller asked for (it may be stored as (b, a)). */
export interface ComparisonView {
  row: ComparisonRow;
  a: string;
  b: string;
}

export interface MapView {
  row: FeatureMapRow;
  dSae: number;
}

/** A best match, or a family entry (a best match with the co-activation of its build). */
export type MatchParent = MatchRow | FamilyRow;
export type MapPointParent = MapPoint & { dictionaryId: string };

const swapped = (v: ComparisonView) => v.row.dictionaryA !== v.a;

async function featureOf(ctx: Context, dictionaryId: string, index: number): Promise<FeatureRow> {
  return (await ctx.loaders.feature.load({ dictionaryId, index }))!;
}

export const compareResolvers = {
  Query: {
    compareDictionaries: async (_, args, ctx) => {
      await Promise.all([dictionaryOrThrow(ctx, args.a), dictionaryOrThrow(ctx, args.b)]);
      const { comparison } = await compareDictionaries(ctx.database, {
        a: args.a,
        b: args.b,
        session: ctx.services.session,
      });
      return { row: comparison, a: args.a, b: args.b };
    },
  } satisfies QueryResolvers,
  DictionaryComparison: {
    id: (v) => comparisonId(v.a, v.b),
    a: (v, _, ctx) => dictionaryOrThrow(ctx, v.a),
    b: (v, _, ctx) => dictionaryOrThrow(ctx, v.b),
    meanMaxCosineAB: (v) => (swapped(v) ? v.row.summary.meanMaxBA : v.row.summary.meanMaxAB),
    meanMaxCosineBA: (v) => (swapped(v) ? v.row.summary.meanMaxAB : v.row.summary.meanMaxBA),
    histogram: (v) => ({
      id: `${comparisonId(v.a, v.b)}/histogram`,
      ...(swapped(v) ? v.row.summary.histogramBA : v.row.summary.histogramAB),
    }),
    oneToOne: (v) => v.row.summary.oneToOne,
    seconds: (v) => v.row.summary.seconds,
    computedAt: (v) => new Date(v.row.createdAt),
    matches: async (v, args, ctx, info) => {
      const order = orDefault(args.order, 'order', info);
      const after = decodeAfter(args.after, order);
      const page = await comparisonMatches(ctx.database, v.row.id, v.a, {
        order,
        first: orDefault(args.first, 'first', info),
        after,
      });
      const edges = page.rows.map((r) => ({
        cursor: encodeCursor(order, { value: order === 'INDEX' ? null : r.cosine, index: r.index }),
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
  } satisfies DictionaryComparisonResolvers,
  FeatureMatch: {
    feature: (m, _, ctx) => featureOf(ctx, m.dictionaryId, m.index),
    match: (m, _, ctx) => featureOf(ctx, m.otherDictionaryId, m.matchIndex),
    paired: (m, _, ctx) => (m.pairedIndex === null ? null : featureOf(ctx, m.otherDictionaryId, m.pairedIndex)),
    // Family entries only: the child's share of its parent's firing tokens in the build of both.
    coActivation: (m) => ('parentTokens' in m && m.parentTokens ? m.bothTokens! / m.parentTokens : null),
    coFiringTokens: (m) => ('bothTokens' in m ? m.bothTokens : null),
  } satisfies FeatureMatchResolvers,
  Feature: {
    related: (f, _, ctx) => ctx.loaders.related.load(f),
    family: async (f, args, ctx, info) => {
      await dictionaryOrThrow(ctx, args.dictionary);
      const rows = await ctx.loaders.family.load({
        dictionaryId: f.dictionaryId,
        index: f.index,
        otherDictionaryId: args.dictionary,
      });
      const minCosine = orDefault(args.minCosine, 'minCosine', info);
      return rows.filter((r) => r.cosine >= minCosine);
    },
    mapPoint: async (f, _, ctx) => {
      const p = await ctx.loaders.mapPoint.load(f);
      return p && { ...p, dictionaryId: f.dictionaryId };
    },
  } satisfies FeatureResolvers,
  Dictionary: {
    map: async (d, _, ctx) => {
      const row = await ctx.loaders.featureMap.load(d.id);
      return row && { row, dSae: d.dSae };
    },
  } satisfies DictionaryResolvers,
  FeatureMap: {
    bounds: (m) => m.row,
    neighbours: (m) => m.row.params.neighbours,
    epochs: (m) => m.row.params.epochs,
    seed: (m) => m.row.params.seed,
    computedAt: (m) => new Date(m.row.createdAt),
    points: async (m, args, ctx, info) => {
      const after = decodeAfter(args.after, 'INDEX');
      const first = orDefault(args.first, 'first', info);
      const page = await mapPoints(ctx.database, m.row.dictionaryId, first, after?.index ?? -1);
      const nodes = page.points.map((p) => ({ ...p, dictionaryId: m.row.dictionaryId }));
      const cursors = nodes.map((p) => encodeCursor('INDEX', { value: null, index: p.index }));
      return {
        edges: nodes.map((node, i) => ({ cursor: cursors[i], node })),
        nodes,
        pageInfo: pageInfo(cursors, page.hasNextPage, after),
        totalCount: m.dSae,
      };
    },
  } satisfies FeatureMapResolvers,
  MapPoint: {
    feature: (p, _, ctx) => featureOf(ctx, p.dictionaryId, p.index),
  } satisfies MapPointResolvers,
};
