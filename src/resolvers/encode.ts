import type { Context } from './context.js';
import type { FeatureActivation } from '../app/encode.js';
import { requireDictionary, requireModel } from '../db/catalog.js';
import { AtlasError } from '../errors.js';

export const encodeResolvers = {
  Query: {
    hookActivations: async (_: unknown, args: { model: string; text: string; hooks: string[]; truncate: boolean }, ctx: Context) => {
      const model = await requireModel(ctx.database, args.model);
      const { tokens, rows } = await ctx.services.encoding.hookActivations(model, args.text, args.hooks, args.truncate);
      return {
        tokens: tokens.ids.map((id, i) => ({ id, text: tokens.texts[i] })),
        hooks: [...rows].map(([hook, { data, d }]) => ({
          hook,
          values: Array.from({ length: data.length / d }, (_, p) => Array.from(data.subarray(p * d, (p + 1) * d))),
        })),
      };
    },
    encodeVectors: async (_: unknown, args: { dictionary: string; vectors: number[][]; topK: number }, ctx: Context) =>
      ctx.services.encoding.encodeVectors(await requireDictionary(ctx.database, args.dictionary), args.vectors, args.topK),
    encode: async (_: unknown, args: { dictionary: string; text: string; topK: number; truncate: boolean }, ctx: Context) => {
      const dict = await requireDictionary(ctx.database, args.dictionary);
      const model = await requireModel(ctx.database, dict.modelId);
      const [encoding] = await ctx.services.encoding.encodeText(model, [dict], args.text, args.topK, args.truncate);
      return encoding;
    },
    encodeMany: async (_: unknown, args: { dictionaries: string[]; text: string; topK: number; truncate: boolean }, ctx: Context) => {
      if (args.dictionaries.length === 0) throw new AtlasError('BAD_USER_INPUT', 'Name at least one dictionary.');
      const dicts = await Promise.all([...new Set(args.dictionaries)].map((id) => requireDictionary(ctx.database, id)));
      const model = await requireModel(ctx.database, dicts[0].modelId);
      return ctx.services.encoding.encodeText(model, dicts, args.text, args.topK, args.truncate);
    },
  },
  FeatureActivation: {
    feature: async (f: FeatureActivation, _: unknown, ctx: Context) => (await ctx.loaders.feature.load(f))!,
  },
};
