/**
 * Relay connection cursors: opaque base64url of the sort value and index of a row. A cursor is only
 * accepted if it could have been issued: an index that fits PostgreSQL's integer, and a value that is
 * exactly a float32 (the real columns pages are sorted by), so 1e308 or 1e-50 never reach SQL.
 */
import { AtlasError } from '../errors.js';

export interface Cursor {
  value: number | null;
  index: number;
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.value, c.index])).toString('base64url');
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

export function decodeCursor(s: string): Cursor {
  try {
    const [value, index] = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as [unknown, unknown];
    const float32 = typeof value === 'number' && Number.isFinite(Math.fround(value)) && Math.fround(value) === value;
    const valueOk = value === null || float32;
    if (valueOk && typeof index === 'number' && Number.isInteger(index) && index >= 0 && index <= MAX_INT4) {
      return { value: value as number | null, index };
    }
  } catch {
    // fall through to the error below
  }
  throw new AtlasError(
    'BAD_USER_INPUT',
    `"after" is not a cursor this API issued: pass an endCursor or edge cursor from a previous page.`,
  );
}
