/**
 * Activation examples store per-token values as float4[] and token ids as int4[] (migration
 * *_packed_example_values.sql). Rows written as jsonb before that migration read back identical
 * after it, and freshly published rows read back as the shortest decimal of each value's float32.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS_DIR } from '../src/paths.js';
import { getTopActivations, publishDashboards } from '../src/db/dashboards.js';
import { openTestDatabase, type Backend } from './helpers/atlas-server.js';

const MIGRATION = readdirSync(MIGRATIONS_DIR).find((f) => f.endsWith('_packed_example_values.sql'))!;

async function seedDictionary(q: (sql: string) => Promise<unknown>): Promise<void> {
  await q(`INSERT INTO models (id, name, architecture, d_model, n_layers, vocab_size, context_length, prepend_bos,
    hook_points, source_path, source_format)
    VALUES ('m', 'm', 'gpt2', 2, 1, 10, 4, false, '["h"]', '/x', 'huggingface')`);
  await q(`INSERT INTO dictionaries (id, model_id, name, hook_point, d_in, d_sae, architecture, source_format, state,
    prepend_bos) VALUES ('d', 'm', 'd', 'h', 2, 2, 'standard', 'saelens', 'ready', false)`);
  await q(`INSERT INTO features (dictionary_id, idx, decoder_norm) VALUES ('d', 0, 1), ('d', 1, 1)`);
  await q(`INSERT INTO feature_decoders (dictionary_id, idx, decoder) VALUES ('d', 0, '[1,0]'), ('d', 1, '[0,1]')`);
}

/** The shortest decimal that reads back as the float32 nearest v (what PostgreSQL prints for real). */
function shortestFloat32(v: number): number {
  const f = Math.fround(v);
  for (let digits = 1; digits <= 9; digits++) {
    const s = Number(f.toPrecision(digits));
    if (Math.fround(s) === f) return s;
  }
  return f;
}

for (const backend of ['pglite', 'postgres'] as Backend[]) {
  describe(`packed example values on ${backend}`, () => {
    it('jsonb rows written before the migration read back identical after it', async (t) => {
      const opened = await openTestDatabase(backend);
      if ('skip' in opened) return t.skip(opened.skip);
      const { database } = opened;
      try {
        await seedDictionary((sql) => database.query(sql));
        // Back to the storage before the migration, with a row as the old publisher wrote it.
        await database.query(`ALTER TABLE activation_examples ALTER COLUMN token_ids SET DATA TYPE jsonb USING
          to_jsonb(token_ids), ALTER COLUMN "values" SET DATA TYPE jsonb USING to_jsonb("values")`);
        await database.query(`INSERT INTO activation_examples (dictionary_id, feature_idx, kind, rank, tokens,
          token_ids, "values", max_value, max_position) VALUES ('d', 0, 'top', 0, '["a", "\\tb", "c"]',
          '[7, 0, 65535]', '[0, 0.1, 12345.678, -2.5e-7, 3.4028235e38]', 12345.678, 2)`);
        for (const statement of readFileSync(join(MIGRATIONS_DIR, MIGRATION), 'utf8').split('--> statement-breakpoint'))
          await database.query(statement);
        const read = await getTopActivations(database, [{ dictionaryId: 'd', index: 0 }]);
        assert.deepEqual(read.get('d:0'), [
          {
            tokens: ['a', '\tb', 'c'],
            tokenIds: [7, 0, 65535],
            values: [0, 0.1, 12345.678, -2.5e-7, 3.4028235e38],
            maxValue: 12345.678,
            maxPosition: 2,
          },
        ]);
      } finally {
        await opened.cleanup();
      }
    });

    it('published rows travel by binary COPY and read back as the shortest float32 decimals', async (t) => {
      const opened = await openTestDatabase(backend);
      if ('skip' in opened) return t.skip(opened.skip);
      const { database } = opened;
      try {
        await seedDictionary((sql) => database.query(sql));
        const values = [0, Math.PI, -1 / 3, 1e-30, 65504.123456789];
        const example = {
          featureIdx: 1,
          kind: 'top' as const,
          band: null,
          rank: 0,
          tokens: ['é', '"q"', '\\', 'x\ny', '🙂'],
          tokenIds: [1, 2, 3, 4, 2 ** 31 - 1],
          values,
          maxValue: Math.PI,
          maxPosition: 1,
        };
        await publishDashboards(database, [
          { dictionaryId: 'd', stats: null, features: [], examples: [example], logits: [] },
        ]);
        const read = await getTopActivations(database, [{ dictionaryId: 'd', index: 1 }]);
        assert.deepEqual(read.get('d:1'), [
          {
            tokens: example.tokens,
            tokenIds: example.tokenIds,
            values: values.map(shortestFloat32),
            maxValue: shortestFloat32(Math.PI),
            maxPosition: 1,
          },
        ]);
      } finally {
        await opened.cleanup();
      }
    });
  });
}
