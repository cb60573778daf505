/**
 * `atlas model delete`: a model that still has dictionaries is refused (CONFLICT, listing them) unless
 * they are to go too; then each goes as `atlas dictionary delete` deletes it (src/db/dictionary-write.ts),
 * and the model row last, only if no dictionary names it by then (an import started meanwhile keeps it).
 * Servers drop the loaded model within a sweep (src/app/freshness.ts); its stored files and converted
 * graph go with the next prune (the command runs one, src/app/artifacts.ts).
 */
import type { Database } from '../db/client.js';
import { assertValidId, deleteModelRow, getModels } from '../db/catalog.js';
import { deleteDictionaryAndStaging, dictionaryIdsOfModel } from '../db/dictionary-write.js';
import { AtlasError } from '../errors.js';

/** How many dictionary ids a refusal's message names (its `details` list them all). */
const LISTED = 10;

function listed(ids: string[]): string {
  const more = ids.length > LISTED ? ` and ${ids.length - LISTED} more` : '';
  return ids.slice(0, LISTED).join(', ') + more;
}

/** Deletes model `id`, and its dictionaries when `withDictionaries`; returns the ids of those deleted. */
export async function deleteModelById(
  database: Database,
  id: string,
  opts: { withDictionaries?: boolean } = {},
): Promise<{ dictionaries: string[] }> {
  assertValidId('Model', id);
  if ((await getModels(database, [id])).length === 0) {
    throw new AtlasError('NOT_FOUND', `No model "${id}". List them with the models query.`);
  }
  const dictionaries = await dictionaryIdsOfModel(database, id);
  if (dictionaries.length > 0 && !opts.withDictionaries) {
    throw new AtlasError(
      'CONFLICT',
      `Model "${id}" has ${dictionaries.length} dictionar${dictionaries.length === 1 ? 'y' : 'ies'} ` +
        `(${listed(dictionaries)}); nothing was deleted. Delete them first (\`atlas dictionary delete ID\`), or ` +
        'pass --with-dictionaries to delete them with the model.',
      { dictionaries },
    );
  }
  for (const dictionary of dictionaries) await deleteDictionaryAndStaging(database, dictionary);
  if (!(await deleteModelRow(database, id))) {
    const left = await dictionaryIdsOfModel(database, id);
    if (left.length === 0) throw new AtlasError('NOT_FOUND', `Model "${id}" was deleted by another process.`);
    throw new AtlasError(
      'CONFLICT',
      `A dictionary of model "${id}" was imported while it was being deleted (${listed(left)}); the model was ` +
        'kept. Run the command again.',
      { dictionaries: left },
    );
  }
  return { dictionaries };
}
