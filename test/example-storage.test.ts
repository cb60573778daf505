/**
 * Dashboards are stored compactly (migration *_compact_dashboards.sql, docs/decisions/0007): each
 * example context once per dictionary, a feature's examples of one kind in one row, per-token values
 * as (position, value) pairs where nonzero, a feature's logit lens in one row.
 * - Rows written in the earlier layouts (a row per example with jsonb values, then float4[]/int4[]; a
 *   row per logit token) read back identical after the migrations;
 * - published examples read back with dense per-token values, each the shortest decimal of its float32;
 * - a build's published examples read back equal a brute-force reference over the same codes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS_DIR } from '../src/paths.js';
import type { Database } from '../src/db/client.js';
import { getLogitTokens, getQuantileExamples, getTopActivations, publishDashboards } from '../src/db/dashboards.js';
import { TOP_EXAMPLES } from '../src/engine/dashboards/top-examples.js';
import { openTestDatabase, type Backend } from './helpers/atlas-server.js';
import { PLANTED, plantedBuild } from './helpers/planted-build.js';

const { D_SAE, LEN } = PLANTED;

const MIGRATIONS = readdirSync(MIGRATIONS_DIR)
  .filter((f) => /^\d{4}_.*\.sql$/.test(f))
  .sort();

/** The migrations before the one tagged `tag` (before: true), or it and those after. */
async function migrate(database: Database, tag: string, before: boolean): Promise<void> {
  const at = MIGRATIONS.findIndex((f) => f.endsWith(`_${tag}.sql`));
  assert.ok(at > 0, `migration ${tag}`);
  for (const file of before ? MIGRATIONS.slice(0, at) : MIGRATIONS.slice(at))
    for (const statement of readFileSync(join(MIGRATIONS_DIR, file), 'utf8').split('--> statement-breakpoint'))
      await database.query(statement);
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

interface OldRow {
  d: string;
  f: number;
  kind: 'top' | 'quantile';
  band: number | null;
  rank: number;
  ctx: { tokens: string[]; tokenIds: number[] };
  values: number[];
  maxValue: number;
  maxPosition: number;
}

const A = { tokens: ['a', ' b', 'c', '\td'], tokenIds: [7, 0, 65535, 3] };
const B = { tokens: ['x', '"y"'], tokenIds: [1, 2] };
// A's token ids with other texts (an import's token that is not one of the vocabulary's).
const A2 = { tokens: ['a', ' b', 'c', 'D'], tokenIds: [7, 0, 65535, 3] };
// Inserted out of reading order; values written as the shortest decimals of their float32s.
const OLD_ROWS: OldRow[] = [
  { d: 'd', f: 0, kind: 'top', band: null, rank: 1, ctx: B, values: [0, 2.5], maxValue: 2.5, maxPosition: 1 },
  {
    d: 'd',
    f: 0,
    kind: 'top',
    band: null,
    rank: 0,
    ctx: A,
    values: [0, 0.1, 12345.678, -2.5e-7],
    maxValue: 12345.678,
    maxPosition: 2,
  },
  { d: 'd', f: 0, kind: 'top', band: null, rank: 2, ctx: A, values: [0, 0, 0, 0], maxValue: 0, maxPosition: 0 },
  {
    d: 'd',
    f: 0,
    kind: 'quantile',
    band: 1,
    rank: 0,
    ctx: A2,
    values: [3.4028235e38, 0, 0, 1],
    maxValue: 3.4028235e38,
    maxPosition: 0,
  },
  { d: 'd', f: 0, kind: 'quantile', band: 0, rank: 1, ctx: B, values: [0.5, 0], maxValue: 0.5, maxPosition: 0 },
  {
    d: 'd',
    f: 0,
    kind: 'quantile',
    band: 0,
    rank: 0,
    ctx: A,
    values: [0, 0, 1e-30, 0.75],
    maxValue: 0.75,
    maxPosition: 3,
  },
  { d: 'd', f: 1, kind: 'top', band: null, rank: 0, ctx: A, values: [1, 2, 3, 4], maxValue: 4, maxPosition: 3 },
  { d: 'e', f: 0, kind: 'top', band: null, rank: 0, ctx: B, values: [0, 7], maxValue: 7, maxPosition: 1 },
];

/** What the readers listed for these rows before: by feature, band (top first) and rank. */
function oldReading(kind: 'top' | 'quantile'): Map<string, Record<string, unknown>[]> {
  const out = new Map<string, Record<string, unknown>[]>();
  const rows = OLD_ROWS.filter((r) => r.kind === kind).sort(
    (x, y) => (x.band ?? -1) - (y.band ?? -1) || x.rank - y.rank,
  );
  for (const r of rows) {
    const key = `${r.d}:${r.f}`;
    const e = { ...r.ctx, values: r.values, maxValue: r.maxValue, maxPosition: r.maxPosition };
    out.set(key, [...(out.get(key) ?? []), kind === 'top' ? e : { ...e, band: r.band }]);
  }
  return out;
}

const KEYS = [
  { dictionaryId: 'd', index: 0 },
  { dictionaryId: 'd', index: 1 },
  { dictionaryId: 'd', index: 2 },
  { dictionaryId: 'e', index: 0 },
];

for (const backend of ['pglite', 'postgres'] as Backend[]) {
  describe(`example storage on ${backend}`, () => {
    it('jsonb rows written before the packed arrays read back identical after every migration', async (t) => {
      const opened = await openTestDatabase(backend, { migrate: false });
      if ('skip' in opened) return t.skip(opened.skip);
      const { database } = opened;
      try {
        await migrate(database, 'packed_example_values', true);
        await database.query(`INSERT INTO activation_examples (dictionary_id, feature_idx, kind, rank, tokens,
          token_ids, "values", max_value, max_position) VALUES ('d', 0, 'top', 0, '["a", "\\tb", "c"]',
          '[7, 0, 65535]', '[0, 0.1, 12345.678, -2.5e-7, 3.4028235e38]', 12345.678, 2)`);
        await migrate(database, 'packed_example_values', false);
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

    it('rows of one example each read back identical after the move to the compact layout', async (t) => {
      const opened = await openTestDatabase(backend, { migrate: false });
      if ('skip' in opened) return t.skip(opened.skip);
      const { database } = opened;
      try {
        await migrate(database, 'compact_dashboards', true);
        for (const r of OLD_ROWS) {
          await database.query(
            `INSERT INTO activation_examples (dictionary_id, feature_idx, kind, band, rank, tokens, token_ids,
              "values", max_value, max_position) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)`,
            [
              r.d,
              r.f,
              r.kind,
              r.band,
              r.rank,
              JSON.stringify(r.ctx.tokens),
              r.ctx.tokenIds,
              r.values,
              r.maxValue,
              r.maxPosition,
            ],
          );
        }
        await migrate(database, 'compact_dashboards', false);
        assert.deepEqual(await getTopActivations(database, KEYS), oldReading('top'));
        assert.deepEqual(await getQuantileExamples(database, KEYS), oldReading('quantile'));
        // Each distinct context once per dictionary: A, B and A2 for d, B for e.
        const contexts = await database.query<{ d: string; n: number }>(
          'SELECT dictionary_id AS d, count(*)::int AS n FROM example_contexts GROUP BY 1 ORDER BY 1',
        );
        assert.deepEqual(contexts, [
          { d: 'd', n: 3 },
          { d: 'e', n: 1 },
        ]);
      } finally {
        await opened.cleanup();
      }
    });

    it('logit tokens written a row each read back identical after the move to a row per feature', async (t) => {
      const opened = await openTestDatabase(backend, { migrate: false });
      if ('skip' in opened) return t.skip(opened.skip);
      const { database } = opened;
      try {
        await migrate(database, 'compact_dashboards', true);
        const rows: [string, number, 'positive' | 'negative', number, number, string, number][] = [
          ['d', 0, 'positive', 1, 9, ' b', 0.25],
          ['d', 0, 'negative', 0, 0, '<0x00>\\', -1e-30],
          ['d', 0, 'positive', 0, 7, 'é', 12345.678],
          ['d', 1, 'positive', 0, 3, '"', 1],
          ['e', 0, 'negative', 0, 4, 'z', -2.5],
        ];
        for (const r of rows) {
          await database.query(
            `INSERT INTO logit_tokens (dictionary_id, feature_idx, sign, rank, token_id, token, weight)
              VALUES ($1, $2, $3, $4, $5, $6, $7)`,
            r,
          );
        }
        await migrate(database, 'compact_dashboards', false);
        const want = new Map<string, Record<'positive' | 'negative', unknown[]>>();
        for (const [d, f, sign, , tokenId, token, weight] of [...rows].sort((a, b) => a[3] - b[3])) {
          const entry = want.get(`${d}:${f}`) ?? { positive: [], negative: [] };
          entry[sign].push({ token, tokenId, weight });
          want.set(`${d}:${f}`, entry);
        }
        assert.deepEqual(await getLogitTokens(database, KEYS), want);
      } finally {
        await opened.cleanup();
      }
    });

    it('published examples travel by binary COPY and read back dense, as the shortest float32 decimals', async (t) => {
      const opened = await openTestDatabase(backend);
      if ('skip' in opened) return t.skip(opened.skip);
      const { database } = opened;
      try {
        const context = { id: 41, tokens: ['é', '"q"', '\\', 'x\ny', '🙂'], tokenIds: [1, 2, 3, 4, 2 ** 31 - 1] };
        const example = {
          context: 41,
          band: null,
          positions: [3, 1, 4],
          values: [1e-30, Math.PI, 65504.123456789],
          maxValue: Math.PI,
          maxPosition: 1,
        };
        await publishDashboards(database, [
          {
            dictionaryId: 'd',
            stats: null,
            features: [],
            contexts: [context],
            examples: [{ featureIdx: 1, kind: 'top', examples: [example] }],
            logits: [],
          },
        ]);
        const read = await getTopActivations(database, [{ dictionaryId: 'd', index: 1 }]);
        assert.deepEqual(read.get('d:1'), [
          {
            tokens: context.tokens,
            tokenIds: context.tokenIds,
            values: [0, shortestFloat32(Math.PI), 0, 1e-30, shortestFloat32(65504.123456789)],
            maxValue: shortestFloat32(Math.PI),
            maxPosition: 1,
          },
        ]);
      } finally {
        await opened.cleanup();
      }
    });

    it("a build's examples read back with the per-token values of a brute-force reference", async (t) => {
      const opened = await openTestDatabase(backend);
      if ('skip' in opened) return t.skip(opened.skip);
      const { database } = opened;
      try {
        const { codes, dashboard } = await plantedBuild(11);
        await publishDashboards(database, [{ ...dashboard, stats: null }]);
        const keys = Array.from({ length: D_SAE }, (_, index) => ({ dictionaryId: 'd', index }));
        const top = await getTopActivations(database, keys);
        const quantile = await getQuantileExamples(database, keys);
        // The reference: feature f's values at each position of context seq, straight from the codes.
        const valuesOf = (f: number, seq: number) => codes[seq].map((row) => row.find((c) => c.f === f)?.v ?? 0);
        const seqOf = (tokenIds: number[]) => (tokenIds[0] - 100) / LEN;
        let quantileExamples = 0;
        for (let f = 0; f < D_SAE; f++) {
          const fired = codes
            .map((_, seq) => ({ seq, values: valuesOf(f, seq) }))
            .map((c) => ({ ...c, max: Math.max(...c.values) }))
            .filter((c) => c.max > 0)
            .sort((a, b) => b.max - a.max || a.seq - b.seq);
          assert.deepEqual(
            top.get(`d:${f}`) ?? [],
            fired.slice(0, TOP_EXAMPLES).map((c) => ({
              tokens: Array.from({ length: LEN }, (_, p) => `t${100 + c.seq * LEN + p}`),
              tokenIds: Array.from({ length: LEN }, (_, p) => 100 + c.seq * LEN + p),
              values: c.values,
              maxValue: c.max,
              maxPosition: c.values.indexOf(c.max),
            })),
            `feature ${f} top examples`,
          );
          for (const e of quantile.get(`d:${f}`) ?? []) {
            const values = valuesOf(f, seqOf(e.tokenIds));
            assert.deepEqual(e.values, values, `feature ${f} quantile example values`);
            assert.equal(e.maxValue, Math.max(...values));
            assert.equal(e.maxPosition, values.indexOf(e.maxValue));
            quantileExamples++;
          }
        }
        assert.ok(quantileExamples >= D_SAE, `${quantileExamples} quantile examples`);
      } finally {
        await opened.cleanup();
      }
    });
  });
}
