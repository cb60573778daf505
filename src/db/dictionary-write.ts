/**
 * Writing a dictionary so that readers never see half of it: the row is created in state
 * 'importing' (invisible to every read), features are streamed in, the HNSW index is built, and only
 * then does the state flip to 'ready'. A run killed at any point leaves an 'importing' row that the
 * next run removes before starting again.
 *
 * `--replace` writes the new version under a hidden id (STAGING_SUFFIX is outside the id alphabet)
 * while the old one keeps serving, then swaps in one transaction: the old rows go, the hidden id is
 * renamed (features and feature_decoders follow by ON UPDATE CASCADE), the index is built and the
 * state flips. Readers see the old version or the new one, whole; a kill anywhere before the commit
 * leaves the old one.
 */
import { eq } from 'drizzle-orm';
import type { Database, Query } from './client.js';
import { dictionaries } from './schema.js';
import {
  assertIdFree,
  assertValidId,
  findDictionaryAnyState,
  requireModel,
  type NewDictionary,
  type DictionaryRow,
} from './catalog.js';
import { copyDecoders } from './features.js';
import { buildVectorIndex, createVectorIndex, dropVectorIndex } from './vector-index.js';
import { AtlasError } from '../errors.js';
import { faultPoint } from '../faults.js';

export interface WriteOptions {
  replace?: boolean;
  /** Per-feature density shipped with the dictionary ([dSae]); `atlas build` replaces it with its own. */
  density?: Float32Array | null;
  onRows?: (n: number) => void;
  /** Called after the rows are in, before the index build (which can take a while). */
  onIndexing?: () => void;
}

const STAGING_SUFFIX = '~next';

export async function deleteDictionary(database: Database, id: string): Promise<void> {
  await dropVectorIndex(database.query, id);
  await database.transaction((q) => deleteRows(q, id));
}

/**
 * `atlas dictionary delete`: the dictionary in any state, and a hidden replacement a killed `--replace`
 * left, go (features, dashboards, explanations, maps and comparisons with them). False when neither was there.
 */
export async function deleteDictionaryAndStaging(database: Database, id: string): Promise<boolean> {
  let found = false;
  for (const target of [`${id}${STAGING_SUFFIX}`, id]) {
    if (!(await findDictionaryAnyState(database, target))) continue;
    await deleteDictionary(database, target);
    found = true;
  }
  return found;
}

/** The ids of a model's dictionaries in any state, a hidden replacement under the id it replaces; sorted. */
export async function dictionaryIdsOfModel(database: Database, modelId: string): Promise<string[]> {
  const rows = await database.query<{ id: string }>('SELECT id FROM dictionaries WHERE model_id = $1', [modelId]);
  return [...new Set(rows.map((r) => r.id.replace(STAGING_SUFFIX, '')))].sort();
}

async function deleteRows(q: Query, id: string): Promise<void> {
  // Dashboard rows carry no foreign key (they are replaced wholesale by each build), so they go by hand.
  await q('DELETE FROM feature_examples WHERE dictionary_id = $1', [id]);
  await q('DELETE FROM example_contexts WHERE dictionary_id = $1', [id]);
  await q('DELETE FROM feature_logits WHERE dictionary_id = $1', [id]);
  await q('DELETE FROM dictionaries WHERE id = $1', [id]);
}

/**
 * Checks the id is free or may be replaced; returns the ready dictionary a `replace` will swap out.
 * Writes nothing, so an import can check before its slow steps.
 */
export async function checkDictionaryId(
  database: Database,
  id: string,
  replace: boolean,
): Promise<DictionaryRow | undefined> {
  assertValidId('Dictionary', id);
  await assertIdFree(database, 'Dictionary', id);
  const existing = await findDictionaryAnyState(database, id);
  if (existing?.state !== 'ready') return undefined;
  if (!replace) {
    throw new AtlasError(
      'CONFLICT',
      `Dictionary "${id}" already exists. Pass --replace to overwrite it, or choose another --id.`,
    );
  }
  return existing;
}

/** Removes what killed imports of `id` left (an 'importing' row, a hidden replacement) and returns the id to write. */
async function prepareTarget(database: Database, id: string, replacing: DictionaryRow | undefined): Promise<string> {
  const staging = `${id}${STAGING_SUFFIX}`;
  if (await findDictionaryAnyState(database, staging)) {
    await deleteDictionary(database, staging);
    // A kill between dropping the old index and the swap left the old version without one.
    if (replacing) await createVectorIndex(database, replacing.id, replacing.dIn, replacing.dSae);
  }
  if (replacing) return staging;
  if (await findDictionaryAnyState(database, id)) await deleteDictionary(database, id);
  return id;
}

/** The old version's rows go and the new one takes its id, in one transaction. */
async function swapIn(
  database: Database,
  old: DictionaryRow,
  staging: string,
  dIn: number,
  dSae: number,
): Promise<void> {
  // Dropping an index locks the whole feature_decoders table until commit, so the old index goes first,
  // on its own: until the swap, searches of the old version scan its rows exactly instead.
  await dropVectorIndex(database.query, old.id);
  await database.transaction(async (q) => {
    await deleteRows(q, old.id);
    faultPoint('import:replaced');
    await q('UPDATE dictionaries SET id = $1 WHERE id = $2', [old.id, staging]);
    await buildVectorIndex(q, old.id, dIn, dSae);
    faultPoint('import:indexed');
    await q("UPDATE dictionaries SET state = 'ready' WHERE id = $1", [old.id]);
  });
}

export async function writeDictionary(
  database: Database,
  dict: Omit<NewDictionary, 'state'>,
  decoderRows: AsyncIterable<Float32Array> | Iterable<Float32Array>,
  opts: WriteOptions = {},
): Promise<DictionaryRow> {
  await requireModel(database, dict.modelId);
  const replacing = await checkDictionaryId(database, dict.id, opts.replace ?? false);
  const target = await prepareTarget(database, dict.id, replacing);
  await database.db.insert(dictionaries).values({ ...dict, id: target, state: 'importing' });
  try {
    const written = await copyDecoders(database, target, dict.dIn, decoderRows, opts.onRows, opts.density ?? null);
    if (written !== dict.dSae) {
      throw new AtlasError(
        'BAD_FILE',
        `The decoder has ${written} rows but the dictionary declares d_sae ${dict.dSae}.`,
      );
    }
    opts.onIndexing?.();
    if (replacing) {
      await swapIn(database, replacing, target, dict.dIn, dict.dSae);
    } else {
      await createVectorIndex(database, target, dict.dIn, dict.dSae);
      faultPoint('import:indexed');
      await database.db.update(dictionaries).set({ state: 'ready' }).where(eq(dictionaries.id, target));
    }
    return (await findDictionaryAnyState(database, dict.id))!;
  } catch (e) {
    await deleteDictionary(database, target).catch(() => undefined);
    // The swap may have dropped the old version's index before it failed.
    if (replacing) {
      await createVectorIndex(database, replacing.id, replacing.dIn, replacing.dSae).catch(() => undefined);
    }
    throw e;
  }
}
