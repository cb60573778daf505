/** Models and dictionaries: reads for the API (only 'ready' dictionaries) and writes for imports. */
import { and, asc, eq, inArray } from 'drizzle-orm';
import type { Database } from './client.js';
import { models, dictionaries } from './schema.js';
import { AtlasError } from '../errors.js';

export type ModelRow = typeof models.$inferSelect;
export type NewModel = typeof models.$inferInsert;
export type DictionaryRow = typeof dictionaries.$inferSelect;
export type NewDictionary = typeof dictionaries.$inferInsert;

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Ids appear in URLs, feature ids (`dict:index`) and index names, so they are kept to a safe alphabet. */
export function assertValidId(kind: string, id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      `${kind} id "${id}" is not valid: use 1–128 letters, digits, '.', '_' or '-', starting with a letter or digit.`,
    );
  }
}

/**
 * Models and dictionaries share one id namespace (the API's ids are globally unique across types),
 * so a new model may not take a dictionary's id nor a dictionary a model's.
 */
export async function assertIdFree(database: Database, kind: 'Model' | 'Dictionary', id: string): Promise<void> {
  const other = kind === 'Model' ? dictionaries : models;
  const [taken] = await database.db.select({ id: other.id }).from(other).where(eq(other.id, id));
  if (taken) {
    const owner = kind === 'Model' ? 'a dictionary' : 'a model';
    throw new AtlasError(
      'CONFLICT',
      `${kind} id "${id}" is ${owner}'s id already; ids are unique across both, pick another.`,
    );
  }
}

export async function listModels(database: Database): Promise<ModelRow[]> {
  return database.db.select().from(models).orderBy(asc(models.id));
}

export async function getModels(database: Database, ids: readonly string[]): Promise<ModelRow[]> {
  if (ids.length === 0) return [];
  return database.db
    .select()
    .from(models)
    .where(inArray(models.id, [...ids]));
}

export async function upsertModel(database: Database, model: NewModel): Promise<ModelRow> {
  assertValidId('Model', model.id);
  await assertIdFree(database, 'Model', model.id);
  const { id: _id, ...rest } = model;
  const [row] = await database.db
    .insert(models)
    .values(model)
    .onConflictDoUpdate({ target: models.id, set: rest })
    .returning();
  return row;
}

export async function listDictionaries(database: Database, modelId?: string): Promise<DictionaryRow[]> {
  const ready = eq(dictionaries.state, 'ready');
  return database.db
    .select()
    .from(dictionaries)
    .where(modelId === undefined ? ready : and(ready, eq(dictionaries.modelId, modelId)))
    .orderBy(asc(dictionaries.modelId), asc(dictionaries.id));
}

export async function getDictionaries(database: Database, ids: readonly string[]): Promise<DictionaryRow[]> {
  if (ids.length === 0) return [];
  return database.db
    .select()
    .from(dictionaries)
    .where(and(inArray(dictionaries.id, [...ids]), eq(dictionaries.state, 'ready')));
}

export async function getDictionariesOfModels(
  database: Database,
  modelIds: readonly string[],
): Promise<DictionaryRow[]> {
  if (modelIds.length === 0) return [];
  return database.db
    .select()
    .from(dictionaries)
    .where(and(inArray(dictionaries.modelId, [...modelIds]), eq(dictionaries.state, 'ready')))
    .orderBy(asc(dictionaries.id));
}

/** Any dictionary row with this id, ready or not (imports use it to detect leftovers and duplicates). */
export async function findDictionaryAnyState(database: Database, id: string): Promise<DictionaryRow | undefined> {
  const [row] = await database.db.select().from(dictionaries).where(eq(dictionaries.id, id));
  return row;
}

export async function requireDictionary(database: Database, id: string): Promise<DictionaryRow> {
  const [row] = await getDictionaries(database, [id]);
  if (!row)
    throw new AtlasError(
      'NOT_FOUND',
      `No dictionary "${id}". List them with the dictionaries query or \`atlas import\` one.`,
    );
  return row;
}

export async function requireModel(database: Database, id: string): Promise<ModelRow> {
  const [row] = await getModels(database, [id]);
  if (!row)
    throw new AtlasError('NOT_FOUND', `No model "${id}". Register it with \`atlas model add PATH --id ${id}\`.`);
  return row;
}
