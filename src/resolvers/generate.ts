import type { Context } from './context.js';
import { generateWith, type GenerateRequest } from '../app/generate.js';

export const generateResolvers = {
  Query: {
    generate: (_: unknown, args: GenerateRequest, ctx: Context) =>
      generateWith(ctx.database, ctx.services.encoding, args),
  },
};
