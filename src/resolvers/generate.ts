import type { GraphQLResolveInfo } from 'graphql';
import type { Context } from './context.js';
import { checkArguments } from './input-guard.js';
import { generateWith, streamGeneration, type GenerateRequest, type GenerationEvent } from '../app/generate.js';

export const generateResolvers = {
  Query: {
    generate: (_: unknown, args: GenerateRequest, ctx: Context) =>
      generateWith(ctx.database, ctx.services.encoding, args),
  },
  Subscription: {
    generateStream: {
      // guardInputs covers Query and Mutation; a subscription checks its text arguments here.
      subscribe: (_: unknown, args: GenerateRequest, ctx: Context, info: GraphQLResolveInfo) => {
        const defs = info.parentType.getFields()[info.fieldName].args;
        checkArguments(defs, args as unknown as Record<string, unknown>, ctx.services.maxInputChars, false);
        return streamGeneration(ctx.database, ctx.services.encoding, args);
      },
      // A failure after the stream began arrives as an event: raised here, it is a coded error of that result.
      resolve: (event: GenerationEvent) => {
        if (event.error) throw event.error;
        return event;
      },
    },
  },
};
