/**
 * Relay connection cursors: opaque base64url of the ordering a page was read in, and the sort value
 * and index of a row. A cursor is only accepted by the ordering that issued it (another answers
 * CURSOR_MISMATCH rather than silently restarting) and only if it could have been issued: an index
 * that fits PostgreSQL's integer, and a value that is exactly a float32 (the real columns pages are
 * sorted by), so 1e308 or 1e-50 never reach SQL. Paging is forward only (`first`/`after`).
 */
import type { GraphQLResolveInfo } from 'graphql';
import { AtlasError } from '../errors.js';

export interface Cursor {
  value: number | null;
  index: number;
}

/** `ordering` names the order rows were read in, e.g. `DENSITY:DESC`; cursors carry it. */
export function encodeCursor(ordering: string, c: Cursor): string {
  return Buffer.from(JSON.stringify([ordering, c.value, c.index])).toString('base64url');
}

/** A forward page's pageInfo from the cursors it issued; `after` is the cursor it started from. */
export function pageInfo(cursors: string[], hasNextPage: boolean, after: Cursor | null) {
  return {
    hasNextPage,
    hasPreviousPage: after !== null,
    startCursor: cursors[0] ?? null,
    endCursor: cursors.at(-1) ?? null,
  };
}

const MAX_INT4 = 2 ** 31 - 1;

function parse(s: string): [unknown, unknown, unknown] | null {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
    return Array.isArray(parsed) && parsed.length === 3 ? (parsed as [unknown, unknown, unknown]) : null;
  } catch {
    return null;
  }
}

/**
 * The cursor `after` names for a page read in `ordering`; null only when `after` is null or absent
 * (an empty string is not "no cursor": it is refused like any other string this API never issued).
 */
export function decodeAfter(after: string | null | undefined, ordering: string): Cursor | null {
  if (after === null || after === undefined) return null;
  const [issuedFor, value, index] = parse(after) ?? [];
  const float32 = typeof value === 'number' && Number.isFinite(Math.fround(value)) && Math.fround(value) === value;
  const valueOk = value === null || float32;
  const indexOk = typeof index === 'number' && Number.isInteger(index) && index >= 0 && index <= MAX_INT4;
  if (typeof issuedFor !== 'string' || !valueOk || !indexOk) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      `"after" is not a cursor this API issued: pass an endCursor or edge cursor from a previous page.`,
    );
  }
  if (issuedFor !== ordering) {
    throw new AtlasError(
      'CURSOR_MISMATCH',
      `"after" is a cursor of a page ordered by ${issuedFor}, not ${ordering}: ` +
        `start again without "after" (or ask for the ordering the cursor came from).`,
      { cursorOrdering: issuedFor, ordering },
    );
  }
  return { value: value as number | null, index: index as number };
}

/** An argument's value, with an explicit null read as the default the schema declares for it. */
export function orDefault<T>(value: T | null | undefined, name: string, info: GraphQLResolveInfo): T {
  if (value !== null && value !== undefined) return value;
  const arg = info.parentType.getFields()[info.fieldName].args.find((a) => a.name === name);
  return arg?.defaultValue as T;
}
