/**
 * What a client may see of the server's own files: an absolute path of two or more segments is shown
 * as `…/name` (the data dir and where files live are for the server log), except to a caller holding a
 * valid API key, who sees values such as ServerInfo.database and DictionaryStats.corpus in full.
 */
import { basename } from 'node:path';
import { isAtlasError } from '../errors.js';
import type { Auth } from './auth.js';

/** An absolute path of two or more segments (not part of a URL or a relative path). */
const ABSOLUTE_PATH = /(?<![\w.:/~-])\/(?:[^\s/'"`]+\/)+[^\s/'"`]*/g;

/** `text` with every absolute path cut to `…/name` (trailing punctuation kept). */
export function hidePaths(text: string): string {
  return text.replace(ABSOLUTE_PATH, (p) => {
    const [, path, tail] = /^(.*?)([.,;:)]*)$/.exec(p)!;
    return `…/${basename(path)}${tail}`;
  });
}

/** `text` as this request's caller may see it: in full with a valid key, without paths otherwise. */
export async function pathsForCaller(auth: Auth, text: string): Promise<string> {
  const keyHolder = await auth.require().then(
    () => true,
    (e: unknown) => {
      if (isAtlasError(e)) return false;
      throw e;
    },
  );
  return keyHolder ? text : hidePaths(text);
}
