/**
 * The one check of an integer argument's range. Its error carries the argument and the range in
 * `extensions` (argument, min, max) so a client reads them without parsing the sentence.
 */
import { AtlasError } from '../errors.js';

export interface Bound {
  min: number;
  max: number;
}

/** `value` if it is an integer in [min, max]; BAD_USER_INPUT naming `argument` and the range otherwise. */
export function checkBound(argument: string, value: unknown, { min, max }: Bound): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
  throw new AtlasError(
    'BAD_USER_INPUT',
    `"${argument}" must be an integer from ${min} to ${max}, got ${JSON.stringify(value) ?? 'nothing'}.`,
    { argument, min, max },
  );
}
