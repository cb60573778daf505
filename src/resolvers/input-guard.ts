/**
 * Checks every text argument of the root fields before a resolver runs (so before any SQL): PostgreSQL
 * text cannot hold NUL, a lone UTF-16 surrogate has no UTF-8 form, and lengths are capped (an ID at
 * MAX_ID_CHARS, any other string at ATLAS_MAX_INPUT_CHARS). Mutations check their ID arguments only:
 * their text fields answer in userErrors.
 */
import { getNamedType, type GraphQLArgument, type GraphQLResolveInfo } from 'graphql';
import { MAX_ID_CHARS } from '../config.js';
import { AtlasError } from '../errors.js';
import type { Context } from './context.js';

type Resolver = (parent: unknown, args: Record<string, unknown>, ctx: Context, info: GraphQLResolveInfo) => unknown;

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkString(name: string, value: string, isId: boolean, maxChars: number): void {
  if (value.includes('\u0000'))
    throw new AtlasError('BAD_USER_INPUT', `"${name}" contains a NUL character; remove it.`);
  if (LONE_SURROGATE.test(value)) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      `"${name}" contains a lone UTF-16 surrogate (not valid Unicode text); send well-formed UTF-8.`,
    );
  }
  const limit = isId ? MAX_ID_CHARS : maxChars;
  if (value.length > limit) {
    const which = isId ? ' for an id' : ' (ATLAS_MAX_INPUT_CHARS)';
    throw new AtlasError('INPUT_TOO_LONG', `"${name}" has ${value.length} characters; the limit is ${limit}${which}.`, {
      characters: value.length,
      limit,
    });
  }
}

function checkValue(name: string, value: unknown, isId: boolean, maxChars: number): void {
  if (typeof value === 'string') checkString(name, value, isId, maxChars);
  else if (Array.isArray(value)) for (const v of value) checkValue(name, v, isId, maxChars);
}

export function checkArguments(
  defs: readonly GraphQLArgument[],
  args: Record<string, unknown>,
  maxChars: number,
  idsOnly: boolean,
): void {
  for (const def of defs) {
    const isId = getNamedType(def.type).name === 'ID';
    if (idsOnly && !isId) continue;
    checkValue(def.name, args[def.name], isId, maxChars);
  }
}

/** Wraps the Query and Mutation resolvers of a resolver map with the checks above. */
export function guardInputs<M extends Record<string, Record<string, unknown>>>(map: M): M {
  const out: Record<string, Record<string, unknown>> = { ...map };
  for (const type of ['Query', 'Mutation']) {
    const fields = map[type];
    if (!fields) continue;
    out[type] = Object.fromEntries(
      Object.entries(fields).map(([name, resolve]) => [
        name,
        ((parent, args, ctx, info) => {
          checkArguments(
            info.parentType.getFields()[info.fieldName].args,
            args,
            ctx.services.maxInputChars,
            type === 'Mutation',
          );
          return (resolve as Resolver)(parent, args, ctx, info);
        }) satisfies Resolver,
      ]),
    );
  }
  return out as M;
}
