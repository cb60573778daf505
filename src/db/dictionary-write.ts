/**
 * Writing a dictionary so that readers never see half of it: the row is created in state
 * 'importing' (invisible to every read), features are streamed in, the HNSW index is built, and only
 * then does the state flip to 'ready'. A run killed at any point leaves an 'importing' row that the
 * next run removes before starting again.
 */
import { eq } from 'drizzle-orm';
import type { Database } from './client.js';
import { dictionaries } from './schema.js';
import {
  assertValidId,
  findDictionaryAnyState,
  requireModel,
  type NewDictionary,
  type DictionaryRow,
} from './catalog.js';
import { copyDecoders } from './features.js';
import { createHnswIndex, dropHnswIndex } from './vector-index.js';
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

export async function deleteDictionary(database: Database, id: string): Promise<void> {
  await dropHnswIndex(database.query, id);
  await database.transaction(async (q) => {
    // Dashboard rows carry no foreign key (they are replaced wholesale by each build), so they go by hand.
    await q('DELETE FROM activation_examples WHERE dictionary_id = $1', [id]);
    await q('DELETE FROM logit_tokens WHERE dictionary_id = $1', [id]);
    await q('DELETE FROM dictionaries WHERE id = $1', [id]);
  });
}

/** Checks the id is free (or frees it per `replace`, or removes a leftover of a killed import). */
export async function prepareDictionaryId(database: Database, id: string, replace: boolean): Promise<void> {
  assertValidId('Dictionary', id);
  const existing = await findDictionaryAnyState(database, id);
  if (!existing) return;
  if (existing.state === 'ready' && !replace) {
    throw new AtlasError(
      'CONFLICT',
      `Dictionary "${id}" already exists. Pass --replace to overwrite it, or choose another --id.`,
    );
  }
  await deleteDictionary(database, id);
  if (existing.state === 'ready') faultPoint('import:replaced');
}

export async function writeDictionary(
  database: Database,
  dict: Omit<NewDictionary, 'state'>,
  decoderRows: AsyncIterable<Float32Array> | Iterable<Float32Array>,
  opts: WriteOptions = {},
): Promise<DictionaryRow> {
  await requireModel(database, dict.modelId);
  await prepareDictionaryId(database, dict.id, opts.replace ?? false);
  await database.db.insert(dictionaries).values({ ...dict, state: 'importing' });
  try {
    const written = await copyDecoders(database, dict.id, dict.dIn, decoderRows, opts.onRows, opts.density ?? null);
    if (written !== dict.dSae) {
      throw new AtlasError(
        'BAD_FILE',
        `The decoder has ${written} rows but the dictionary declares d_sae ${dict.dSae}.`,
      );
    }
    opts.onIndexing?.();
    await createHnswIndex(database, dict.id, dict.dIn, dict.dSae);
    faultPoint('import:indexed');
    const [row] = await database.db
      .update(dictionaries)
      .set({ state: 'ready' })
      .where(eq(dictionaries.id, dict.id))
      .returning();
    return row;
  } catch (e) {
    await deleteDictionary(database, dict.id).catch(() => undefined);
    throw e;
  }
}
