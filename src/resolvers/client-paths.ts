/** Fields that name server files (see src/app/client-view.ts): in full for a key holder, as `…/name` otherwise. */
import type { Context } from './context.js';
import { pathsForCaller } from '../app/client-view.js';

export const clientPathResolvers = {
  ServerInfo: {
    database: (s: { database: string }, _: unknown, ctx: Context) => pathsForCaller(ctx.auth, s.database),
  },
  DictionaryStats: {
    corpus: (s: { corpus: string }, _: unknown, ctx: Context) => pathsForCaller(ctx.auth, s.corpus),
  },
};
