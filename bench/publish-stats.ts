/**
 * The statistics part of `atlas build`'s publish alone: publishDashboards with one row of statistics
 * per feature (density, max, mean, a 16-bin histogram, no label) and no examples, over a dictionary of
 * random unit-scale decoder rows with its HNSW index, timed per round (median of --rounds after one
 * warm-up). Isolates what the per-feature UPDATE costs, HNSW maintenance included where the decoder
 * shares the updated table. Measured on the shared 2-core VM (load 6–10), median of 3: 4096 × 768,
 * decoder in features 23.4 s (PGlite) / 8.2 s (PostgreSQL), in feature_decoders 0.24 s / 0.12 s;
 * 4096 × 64, 6.5–7.8 s / 3.6–11.8 s before, 0.50–0.60 s / 0.37–0.45 s after.
 * Usage: node --import tsx bench/publish-stats.ts [--dsae 4096] [--din 64] [--rounds 5]
 * [--database-url postgres://… (an empty database; default a fresh PGlite)]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../src/db/client.js';
import { copyDecoders } from '../src/db/features.js';
import { createVectorIndex } from '../src/db/vector-index.js';
import { publishDashboards, type FeatureStatsRow } from '../src/db/dashboards.js';
import { arg, uniform } from './util.js';

const D_SAE = Number(arg('dsae', '4096'));
const D_IN = Number(arg('din', '64'));
const ROUNDS = Number(arg('rounds', '5'));
const DATABASE_URL = arg('database-url', '');

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-bench-publish-'));
  const database = await openDatabase({ dataDir: join(dir, 'data'), databaseUrl: DATABASE_URL || undefined });
  try {
    await database.query(`INSERT INTO models (id, name, architecture, d_model, n_layers, vocab_size, context_length,
      prepend_bos, hook_points, source_path, source_format)
      VALUES ('m', 'm', 'gpt2', ${D_IN}, 1, 10, 4, false, '["h"]', '/x', 'huggingface')`);
    await database.query(`INSERT INTO dictionaries (id, model_id, name, hook_point, d_in, d_sae, architecture,
      source_format, state, prepend_bos) VALUES ('b', 'm', 'b', 'h', ${D_IN}, ${D_SAE}, 'topk', 'saelens', 'ready',
      false)`);
    await copyDecoders(database, 'b', D_IN, [uniform(D_SAE * D_IN, 1 / Math.sqrt(D_IN), 1)]);
    await createVectorIndex(database, 'b', D_IN, D_SAE);
    const times: number[] = [];
    for (let round = 0; round <= ROUNDS; round++) {
      const stats: FeatureStatsRow[] = Array.from({ length: D_SAE }, (_, idx) => ({
        idx,
        density: (idx + round) / (D_SAE + ROUNDS),
        maxActivation: 1 + round + idx / D_SAE,
        meanActivation: 0.5,
        histogram: { edges: Array.from({ length: 17 }, (_, e) => e / 16), counts: new Array<number>(16).fill(round) },
        label: null,
      }));
      const t0 = performance.now();
      await publishDashboards(database, [
        { dictionaryId: 'b', stats: null, features: stats, contexts: [], examples: [], logits: [] },
      ]);
      if (round > 0) times.push((performance.now() - t0) / 1000);
    }
    times.sort((a, b) => a - b);
    console.log(
      `publish statistics, ${D_SAE} x ${D_IN} dictionary, ${DATABASE_URL ? 'PostgreSQL' : 'PGlite'}: median ` +
        `${times[times.length >> 1].toFixed(3)} s (rounds ${times.map((t) => t.toFixed(3)).join(' ')})`,
    );
  } finally {
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
