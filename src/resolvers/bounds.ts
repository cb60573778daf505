/**
 * The integer arguments with a range, in one table, checked before the field's resolver runs (so
 * before any SQL or model work): page sizes, neighbour counts and top-k widths. A range that depends on
 * the dictionary (topK ≤ dSae) is checked where the dictionary is known, with the same checkBound.
 */
import type { GraphQLResolveInfo } from 'graphql';
import { checkBound, type Bound } from '../app/bounds.js';
import { MAX_PAGE } from '../app/catalog.js';
import { MAX_MAP_PAGE } from '../app/feature-map.js';
import { MAX_SEARCH_RESULTS } from '../app/search.js';
import { MAX_NEIGHBORS } from '../app/nearest.js';
import { MAX_TOP_K } from '../app/encode.js';
import { orDefault } from './connection.js';

/** Top-activation examples a feature page may ask for (the build stores at most this many). */
const MAX_TOP_ACTIVATIONS = 100;

const page: Bound = { min: 0, max: MAX_PAGE };
const searchResults: Bound = { min: 1, max: MAX_SEARCH_RESULTS };
const topK: Bound = { min: 1, max: MAX_TOP_K };

/** Type → field → argument → its range. */
export const ARGUMENT_BOUNDS: Record<string, Record<string, Record<string, Bound>>> = {
  Query: {
    searchFeatures: { first: searchResults },
    searchExplanations: { first: searchResults },
    nearestFeatures: { k: { min: 1, max: MAX_NEIGHBORS } },
    encode: { topK },
    encodeMany: { topK },
    encodeVectors: { topK },
  },
  Dictionary: { features: { first: page } },
  DictionaryComparison: { matches: { first: page } },
  FeatureMap: { points: { first: { min: 0, max: MAX_MAP_PAGE } } },
  Feature: { topActivations: { first: { min: 0, max: MAX_TOP_ACTIVATIONS } } },
};

type Resolver = (parent: unknown, args: Record<string, unknown>, ctx: unknown, info: GraphQLResolveInfo) => unknown;

/** Wraps the resolvers named in ARGUMENT_BOUNDS with the checks of their arguments. */
export function guardBounds<M extends Record<string, Record<string, unknown>>>(map: M): M {
  const out: Record<string, Record<string, unknown>> = { ...map };
  for (const [type, fields] of Object.entries(ARGUMENT_BOUNDS)) {
    out[type] = { ...out[type] };
    for (const [field, bounds] of Object.entries(fields)) {
      const resolve = out[type][field] as Resolver | undefined;
      if (!resolve) throw new Error(`ARGUMENT_BOUNDS names ${type}.${field}, which has no resolver.`);
      out[type][field] = ((parent, args, ctx, info) => {
        // An explicit null means the declared default (the argument is nullable); the default is checked too.
        const checked = { ...args };
        for (const [argument, bound] of Object.entries(bounds)) {
          checked[argument] = checkBound(argument, orDefault(args[argument], argument, info), bound);
        }
        return resolve(parent, checked, ctx, info);
      }) satisfies Resolver;
    }
  }
  return out as M;
}
