/**
 * The encode paths' catalog cache (src/app/catalog-cache.ts) on a fake clock and counted reads: a row
 * is read once within the TTL and again after it, concurrent lookups share one read, missing ids and
 * failures are not kept, and rows are kept per database, shared by its per-request views.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CatalogCache } from '../src/app/catalog-cache.js';
import type { Database } from '../src/db/client.js';
import type { DictionaryRow, ModelRow } from '../src/db/catalog.js';
import { AtlasError } from '../src/errors.js';

function counted() {
  let clock = 0;
  const reads: string[] = [];
  const known = new Set(['m', 'd']);
  const read =
    <T>(kind: string) =>
    async (_db: Database, id: string): Promise<T> => {
      reads.push(`${kind}:${id}`);
      if (!known.has(id)) throw new AtlasError('NOT_FOUND', `No ${kind} "${id}".`);
      return { id, version: reads.length } as unknown as T;
    };
  const cache = new CatalogCache(
    { model: read<ModelRow>('model'), dictionary: read<DictionaryRow>('dictionary') },
    1000,
    () => clock,
  );
  return { cache, reads, known, advance: (ms: number) => (clock += ms) };
}

/** A database as the cache tells them apart: by the drizzle instance its per-request views share. */
const database = () => ({ db: {} }) as unknown as Database;
const db = database();

describe('CatalogCache', () => {
  it('reads a row once within the TTL and again after it', async () => {
    const { cache, reads, advance } = counted();
    const first = await cache.dictionary(db, 'd');
    advance(999);
    assert.equal(await cache.dictionary(db, 'd'), first, 'the same row within the TTL');
    assert.deepEqual(reads, ['dictionary:d']);
    advance(1);
    const second = await cache.dictionary(db, 'd');
    assert.deepEqual(reads, ['dictionary:d', 'dictionary:d'], 'read again once the TTL has passed');
    assert.notEqual(second, first);
    await cache.model(db, 'm');
    assert.deepEqual(reads.at(-1), 'model:m', 'models and dictionaries are cached apart');
  });

  it('shares one read among concurrent lookups', async () => {
    const { cache, reads } = counted();
    const rows = await Promise.all([cache.model(db, 'm'), cache.model(db, 'm'), cache.model(db, 'm')]);
    assert.deepEqual(reads, ['model:m']);
    assert.equal(rows[0], rows[2]);
  });

  it('does not keep a missing id: a row added later is seen at once', async () => {
    const { cache, reads, known } = counted();
    await assert.rejects(cache.dictionary(db, 'new'), (e: unknown) => (e as AtlasError).code === 'NOT_FOUND');
    known.add('new');
    assert.equal((await cache.dictionary(db, 'new')).id, 'new');
    assert.deepEqual(reads, ['dictionary:new', 'dictionary:new']);
  });

  it('keeps rows per database', async () => {
    const { cache, reads } = counted();
    await cache.model(db, 'm');
    await cache.model(database(), 'm');
    assert.deepEqual(reads, ['model:m', 'model:m']);
  });

  it('shares rows among the per-request views of one database', async () => {
    const { cache, reads } = counted();
    const first = await cache.dictionary({ ...db, forRequest: () => db }, 'd');
    assert.equal(await cache.dictionary({ ...db }, 'd'), first);
    assert.deepEqual(reads, ['dictionary:d']);
  });
});
