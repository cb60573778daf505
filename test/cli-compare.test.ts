/**
 * `atlas compare` and `atlas map` run in-process through commander against an embedded database:
 * the printed PW-MCC equals the float64 mean cosine of the planted pairs, a second run reads the
 * stored comparison, and the map stores one point per feature.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { register as registerCompare } from '../src/commands/compare.js';
import { register as registerMap } from '../src/commands/map.js';
import { openDatabase } from '../src/db/client.js';
import { upsertModel } from '../src/db/catalog.js';
import { writeDictionary } from '../src/db/dictionary-write.js';
import { randomRows, permutedCopy, cosine64 } from './helpers/planted-dictionaries.js';

const D = 16;
const N = 40;

async function atlas(dir: string, ...args: string[]): Promise<string> {
  const program = new Command('atlas').exitOverride();
  registerCompare(program);
  registerMap(program);
  const saved = { dir: process.env.ATLAS_DATA_DIR, url: process.env.DATABASE_URL, device: process.env.ATLAS_DEVICE };
  const log = console.log;
  let out = '';
  Object.assign(process.env, { ATLAS_DATA_DIR: dir, DATABASE_URL: '', ATLAS_DEVICE: 'cpu' });
  console.log = (...parts: unknown[]) => {
    out += `${parts.join(' ')}\n`;
  };
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    console.log = log;
    for (const [k, v] of [
      ['ATLAS_DATA_DIR', saved.dir],
      ['DATABASE_URL', saved.url],
      ['ATLAS_DEVICE', saved.device],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  return out;
}

it('atlas compare prints and stores the comparison; atlas map stores a point per feature', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-compare-'));
  try {
    const a = randomRows(31, N, D);
    const b = permutedCopy(a, D, 32, 0.3);
    let db = await openDatabase({ dataDir: dir });
    await upsertModel(db, {
      id: 'm',
      name: 'm',
      architecture: 'llama',
      dModel: D,
      nLayers: 1,
      vocabSize: 16,
      contextLength: 16,
      prependBos: true,
      hookPoints: ['h'],
      sourcePath: '/nonexistent',
      sourceFormat: 'llama2c',
      tokenizerPath: null,
    });
    for (const [id, rows] of [
      ['a', a],
      ['b', b.rows],
    ] as const) {
      await writeDictionary(
        db,
        {
          id,
          modelId: 'm',
          name: id,
          hookPoint: 'h',
          dIn: D,
          dSae: N,
          architecture: 'topk',
          k: 4,
          params: {},
          sourceFormat: 'saelens',
          prependBos: true,
        },
        [rows],
      );
    }
    await db.close();

    const pwmcc = b.perm.reduce((s, p, i) => s + cosine64(a, p, b.rows, i, D), 0) / N;
    const first = await atlas(dir, 'compare', 'a', 'b');
    assert.match(first, new RegExp(`one-to-one matching \\(PW-MCC\\): ${pwmcc.toFixed(4)}`));
    assert.match(first, /computed in [\d.]+ s and stored/);
    const second = await atlas(dir, 'compare', 'b', 'a');
    assert.match(second, /\(stored /);
    assert.match(second, new RegExp(`b → a: mean max cosine ${pwmcc.toFixed(4)}`));

    assert.match(
      await atlas(dir, 'map', 'a', '--epochs', '30'),
      new RegExp(`a: mapped ${N} features \\(UMAP, cosine, 15 neighbours, 30 epochs\\)`),
    );
    db = await openDatabase({ dataDir: dir });
    const [row] = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM feature_map_points WHERE dictionary_id = 'a'",
    );
    await db.close();
    assert.equal(row.n, N);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
