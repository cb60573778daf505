/** Relay connection cursors: opaque base64url of the sort value and index of a row. */
import { AtlasError } from '../errors.js';

export interface Cursor {
  value: number | null;
  index: number;
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.value, c.index])).toString('base64url');
}

export function decodeCursor(s: string): Cursor {
  try {
    const [value, index] = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as [unknown, unknown];
    if ((value === null || typeof value === 'number') && Number.isInteger(index)) return { value: value as number | null, index: index as number };
  } catch {
    // fall through to the error below
  }
  throw new AtlasError('BAD_USER_INPUT', `"after" is not a cursor this API issued: pass an endCursor or edge cursor from a previous page.`);
}
