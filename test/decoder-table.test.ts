/**
 * Decoder vectors live in feature_decoders, apart from the statistics in features (migration
 * *_decoder_table.sql). A catalog written before that migration keeps every decoder row, and each
 * dictionary's HNSW index comes back on the new table under its name, matched by the searches
 * (EXPLAIN names it); `atlas build`'s statistics updates leave the decoder table untouched. The later
 * migration *_ivfflat_indexes.sql rebuilds the HNSW indexes of dictionaries of up to 262,144 features
 * as IVFFlat under the same names.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS_DIR } from '../src/paths.js';
import { indexName } from '../src/db/vector-index.js';
import { getDecoders } from '../src/db/features.js';
import { nearestFeatures } from '../src/db/nearest.js';
import { openTestDatabase, type Backend } from './helpers/atlas-server.js';
import type { Database } from '../src/db/client.js';

const migration = (suffix: string) => readdirSync(MIGRATIONS_DIR).find((f) => f.endsWith(suffix))!;
const MIGRATION = migration('_decoder_table.sql');

/** Two ready dictionaries of width 3 with 4 decoder rows each, row i of dictionary j = [i+1, j, 0.5-i]. */
const DICTS = ['da', 'db.x'];
const ROWS = 4;
const decoder = (j: number, i: number): number[] => [i + 1, j, 0.5 - i];

function cosine(a: number[], b: number[]): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

/** Model 'm' of width 3, which every dictionary here belongs to. */
const INSERT_MODEL = `INSERT INTO models (id, name, architecture, d_model, n_layers, vocab_size, context_length,
  prepend_bos, hook_points, source_path, source_format)
  VALUES ('m', 'm', 'gpt2', 3, 1, 10, 4, false, '["h"]', '/x', 'huggingface')`;

/** The layout before the migration: decoder in features, the HNSW index over it as vector-index.ts built it. */
async function seedOldLayout(q: (sql: string) => Promise<unknown>): Promise<void> {
  await q(INSERT_MODEL);
  await q('DROP TABLE feature_decoders');
  await q('ALTER TABLE features ADD COLUMN decoder vector NOT NULL');
  for (const [j, id] of DICTS.entries()) {
    await q(`INSERT INTO dictionaries (id, model_id, name, hook_point, d_in, d_sae, architecture, source_format, state,
      prepend_bos) VALUES ('${id}', 'm', 'd', 'h', 3, ${ROWS}, 'standard', 'saelens', 'ready', false)`);
    for (let i = 0; i < ROWS; i++) {
      await q(`INSERT INTO features (dictionary_id, idx, decoder, decoder_norm, density) VALUES ('${id}', ${i},
        '[${decoder(j, i).join(',')}]', 1, ${i / 10})`);
    }
    await q(`CREATE INDEX ${indexName(id)} ON features USING hnsw ((decoder::vector(3)) vector_cosine_ops)
      WHERE dictionary_id = '${id}'`);
  }
}

async function explainNearest(database: Database, id: string): Promise<string> {
  return database.transaction(async (q) => {
    await q('SET LOCAL enable_seqscan = off');
    const plan = await q<{ 'QUERY PLAN': string }>(
      `EXPLAIN SELECT idx FROM feature_decoders WHERE dictionary_id = '${id}'
        ORDER BY decoder::vector(3) <=> '[1,0,0]'::vector(3) LIMIT 2`,
    );
    return plan.map((r) => r['QUERY PLAN']).join('\n');
  });
}

for (const backend of ['pglite', 'postgres'] as Backend[]) {
  describe(`decoder table on ${backend}`, () => {
    it('the migration moves every decoder row and rebuilds each HNSW index on the new table', async (t) => {
      const opened = await openTestDatabase(backend);
      if ('skip' in opened) return t.skip(opened.skip);
      const { database } = opened;
      try {
        await seedOldLayout((sql) => database.query(sql));
        for (const statement of readFileSync(join(MIGRATIONS_DIR, MIGRATION), 'utf8').split('--> statement-breakpoint'))
          await database.query(statement);

        const keys = DICTS.flatMap((dictionaryId) =>
          Array.from({ length: ROWS }, (_, index) => ({ dictionaryId, index })),
        );
        const read = await getDecoders(database, keys);
        for (const [j, id] of DICTS.entries())
          for (let i = 0; i < ROWS; i++) assert.deepEqual(read.get(`${id}:${i}`), decoder(j, i), `${id}:${i}`);
        const columns = await database.query<{ column_name: string }>(
          "SELECT column_name FROM information_schema.columns WHERE table_name = 'features' AND column_name = " +
            "'decoder'",
        );
        assert.deepEqual(columns, [], 'features has no decoder column');
        const indexes = await database.query<{ indexname: string; tablename: string }>(
          "SELECT indexname, tablename FROM pg_indexes WHERE indexdef LIKE '% USING hnsw %' ORDER BY indexname",
        );
        assert.deepEqual(
          indexes,
          DICTS.map((id) => ({ indexname: indexName(id), tablename: 'feature_decoders' })).sort((a, b) =>
            a.indexname.localeCompare(b.indexname),
          ),
        );
        for (const id of DICTS) assert.match(await explainNearest(database, id), new RegExp(indexName(id)));

        // Nearest to [1, 0, 0.2] in dictionary 'da': float64 cosines of the stored rows, best first.
        const want = Array.from({ length: ROWS }, (_, i) => ({ index: i, cosine: cosine(decoder(0, i), [1, 0, 0.2]) }))
          .sort((a, b) => b.cosine - a.cosine)
          .slice(0, 2);
        const got = await nearestFeatures(database, {
          dictionaries: [{ id: 'da', dSae: ROWS }],
          dIn: 3,
          vector: [1, 0, 0.2],
          k: 2,
        });
        assert.deepEqual(
          got.map((n) => n.index),
          want.map((w) => w.index),
        );
        for (const [r, n] of got.entries()) assert.ok(Math.abs(n.cosine - want[r].cosine) < 1e-6);
      } finally {
        await opened.cleanup();
      }
    });

    it('the IVFFlat migration rebuilds HNSW indexes of dictionaries up to 262,144 features as IVFFlat', async (t) => {
      const opened = await openTestDatabase(backend);
      if ('skip' in opened) return t.skip(opened.skip);
      const { database } = opened;
      try {
        await database.query(INSERT_MODEL);
        // 'db.x' declares more features than IVFFlat takes; only its size matters to the migration.
        for (const [j, [id, dSae]] of [
          ['da', ROWS],
          ['db.x', 262_145],
        ].entries()) {
          await database.query(`INSERT INTO dictionaries (id, model_id, name, hook_point, d_in, d_sae, architecture,
            source_format, state, prepend_bos) VALUES ('${id}', 'm', 'd', 'h', 3, ${dSae}, 'standard', 'saelens',
            'ready', false)`);
          for (let i = 0; i < ROWS; i++) {
            await database.query(`INSERT INTO features (dictionary_id, idx, decoder_norm) VALUES ('${id}', ${i}, 1)`);
            await database.query(`INSERT INTO feature_decoders (dictionary_id, idx, decoder)
              VALUES ('${id}', ${i}, '[${decoder(j, i).join(',')}]')`);
          }
          await database.query(`CREATE INDEX ${indexName(String(id))} ON feature_decoders
            USING hnsw ((decoder::vector(3)) vector_cosine_ops) WHERE dictionary_id = '${id}'`);
        }
        await database.query(readFileSync(join(MIGRATIONS_DIR, migration('_ivfflat_indexes.sql')), 'utf8'));
        const indexes = await database.query<{ indexname: string; indexdef: string }>(
          "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'feature_decoders' AND indexname <> " +
            "'feature_decoders_dictionary_id_idx_pk'",
        );
        const method = (id: string) => {
          const def = indexes.find((i) => i.indexname === indexName(id))?.indexdef ?? '';
          return /USING (\w+) .*vector_cosine_ops\)(?: WITH \(lists='?(\d+)'?\))? WHERE/.exec(def)?.slice(1, 3);
        };
        assert.equal(indexes.length, 2);
        assert.deepEqual(method('da'), ['ivfflat', '2']);
        assert.deepEqual(method('db.x'), ['hnsw', undefined]);
        assert.match(await explainNearest(database, 'da'), new RegExp(indexName('da')));
      } finally {
        await opened.cleanup();
      }
    });

    it('statistics updates write features rows only, never the decoder table', async (t) => {
      const opened = await openTestDatabase(backend);
      if ('skip' in opened) return t.skip(opened.skip);
      const { database } = opened;
      try {
        await database.query(INSERT_MODEL);
        await database.query(`INSERT INTO dictionaries (id, model_id, name, hook_point, d_in, d_sae, architecture,
          source_format, state, prepend_bos)
          VALUES ('da', 'm', 'd', 'h', 3, 1, 'standard', 'saelens', 'ready', false)`);
        await database.query("INSERT INTO features (dictionary_id, idx, decoder_norm) VALUES ('da', 0, 1)");
        await database.query("INSERT INTO feature_decoders (dictionary_id, idx, decoder) VALUES ('da', 0, '[1,2,3]')");
        const version = async () =>
          (
            await database.query<{ v: string }>(
              "SELECT ctid::text AS v FROM feature_decoders WHERE dictionary_id = 'da'",
            )
          )[0].v;
        const before = await version();
        await database.query("UPDATE features SET density = 0.5, max_activation = 2 WHERE dictionary_id = 'da'");
        assert.equal(await version(), before, 'the decoder row keeps its version (no write, no index insertion)');
        // The --replace rename reaches the decoder rows through ON UPDATE CASCADE; a delete removes them.
        await database.query("UPDATE dictionaries SET id = 'dz' WHERE id = 'da'");
        assert.deepEqual(
          await getDecoders(database, [{ dictionaryId: 'dz', index: 0 }]),
          new Map([['dz:0', [1, 2, 3]]]),
        );
        await database.query("DELETE FROM dictionaries WHERE id = 'dz'");
        assert.deepEqual(await database.query('SELECT * FROM feature_decoders'), []);
      } finally {
        await opened.cleanup();
      }
    });
  });
}
