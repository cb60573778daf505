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

/**
 * Deletes a model row unless a dictionary row (in any state) names it, in one statement, so an import
 * that started meanwhile is never cascaded away half-written. False when it was not deleted.
 */
export async function deleteModelRow(database: Database, id: string): Promise<boolean> {
  const rows = await database.query(
    'DELETE FROM models WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM dictionaries WHERE model_id = $1) RETURNING id',
    [id],
  );
  return rows.length > 0;
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

/** What a replica's loaded copy of a row depends on (src/app/freshness.ts): its id and file version. */
export interface RowVersion {
  kind: 'model' | 'dictionary';
  id: string;
  /** The artifact manifest's version; null for rows that point at paths. */
  version: string | null;
  sourcePath: string | null;
  tokenizerPath: string | null;
  weightsPath: string | null;
  createdAt: Date;
}

/** The current versions of the given models and ready dictionaries, in one query; ids not listed are gone. */
export async function rowVersions(
  database: Database,
  modelIds: readonly string[],
  dictionaryIds: readonly string[],
): Promise<RowVersion[]> {
  const rows = await database.query<{
    kind: 'model' | 'dictionary';
    id: string;
    version: string | null;
    source_path: string | null;
    tokenizer_path: string | null;
    weights_path: string | null;
    created_at: Date | string;
  }>(
    `SELECT 'model' AS kind, id, artifacts->>'version' AS version, source_path, tokenizer_path,
            NULL::text AS weights_path, created_at
       FROM models WHERE id = ANY($1::text[])
     UNION ALL
     SELECT 'dictionary', id, artifacts->>'version', NULL, NULL, weights_path, created_at
       FROM dictionaries WHERE state = 'ready' AND id = ANY($2::text[])`,
    [[...modelIds], [...dictionaryIds]],
  );
  return rows.map((r) => ({
    kind: r.kind,
    id: r.id,
    version: r.version,
    sourcePath: r.source_path,
    tokenizerPath: r.tokenizer_path,
    weightsPath: r.weights_path,
    createdAt: new Date(r.created_at),
  }));
}

/** Every artifact version some model or dictionary row (in any state) still names. */
export async function referencedVersions(database: Database): Promise<Set<string>> {
  const rows = await database.query<{ version: string }>(
    `SELECT artifacts->>'version' AS version FROM models WHERE artifacts IS NOT NULL
     UNION SELECT artifacts->>'version' FROM dictionaries WHERE artifacts IS NOT NULL`,
  );
  return new Set(rows.map((r) => r.version));
}
