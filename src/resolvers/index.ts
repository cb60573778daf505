import { catalogResolvers } from './catalog.js';
import { searchResolvers } from './nearest.js';
import { encodeResolvers } from './encode.js';
import { dashboardResolvers } from './dashboards.js';
import { explanationResolvers } from './explanations.js';
import { searchFeatureResolvers } from './search-features.js';
import { compareResolvers } from './compare.js';
import { generateResolvers } from './generate.js';
import { nodeResolvers } from './node.js';
import { DateTime } from './scalars.js';
import { clientPathResolvers } from './client-paths.js';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { typeDefs } from '../schema/index.js';
import { guardInputs } from './input-guard.js';
import { guardBounds } from './bounds.js';

type ResolverMap = Record<string, Record<string, unknown>>;

/** Each file resolves its own slice of the schema; types that appear in several files are merged here. */
function merge(...maps: ResolverMap[]): ResolverMap {
  const out: ResolverMap = {};
  for (const map of maps) {
    for (const [type, fields] of Object.entries(map)) out[type] = { ...out[type], ...fields };
  }
  return out;
}

export const resolvers = guardInputs(
  guardBounds(
    merge(
      { DateTime } as unknown as ResolverMap,
      nodeResolvers,
      catalogResolvers,
      searchResolvers,
      encodeResolvers,
      explanationResolvers,
      searchFeatureResolvers,
      dashboardResolvers,
      compareResolvers,
      generateResolvers,
      clientPathResolvers,
    ),
  ),
);

/** The SDL with its resolvers: one schema served over HTTP (Apollo) and WebSocket (graphql-ws). */
export const schema = makeExecutableSchema({ typeDefs, resolvers });
