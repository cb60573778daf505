/**
 * `atlas dictionary delete`: the dictionary's rows go in one transaction (src/db/dictionary-write.ts);
 * servers drop its encoder and decoder matrix within a sweep (src/app/freshness.ts), and its stored
 * files go with the next prune (the command runs one, src/app/artifacts.ts).
 */
import type { Database } from '../db/client.js';
import { assertValidId } from '../db/catalog.js';
import { deleteDictionaryAndStaging } from '../db/dictionary-write.js';
import { AtlasError } from '../errors.js';

export async function deleteDictionaryById(database: Database, id: string): Promise<void> {
  assertValidId('Dictionary', id);
  if (!(await deleteDictionaryAndStaging(database, id))) {
    throw new AtlasError('NOT_FOUND', `No dictionary "${id}". List them with the dictionaries query.`);
  }
}
