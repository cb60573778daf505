/** Feature dashboards and dictionary statistics, with the ids clients cache them by (see node.ts). */
import { quantileBands } from '../app/dashboards.js';
import { AtlasError } from '../errors.js';
import { featureId } from './node.js';
import { orDefault } from './connection.js';
import type { DictionaryResolvers, FeatureResolvers } from './generated.js';

const MAX_TOP = 100;

export const dashboardResolvers = {
  Feature: {
    histogram: (f) => f.histogram && { id: `${featureId(f)}/histogram`, ...f.histogram },
    topActivations: async (f, args, ctx, info) => {
      const first = orDefault(args.first, 'first', info);
      if (!Number.isInteger(first) || first < 0 || first > MAX_TOP) {
        throw new AtlasError('BAD_USER_INPUT', `"first" must be between 0 and ${MAX_TOP}, got ${first}.`);
      }
      return (await ctx.loaders.topActivations.load(f)).slice(0, first);
    },
    quantileExamples: async (f, _, ctx) => quantileBands(f, await ctx.loaders.quantileExamples.load(f)),
    logits: async (f, _, ctx) => {
      const lens = await ctx.loaders.logits.load(f);
      return lens && { id: `${featureId(f)}/logits`, ...lens };
    },
  } satisfies FeatureResolvers,
  Dictionary: {
    stats: (d) => d.stats && { id: `${d.id}/stats`, ...d.stats },
  } satisfies DictionaryResolvers,
};
