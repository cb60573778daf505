/**
 * The demo atlas: on a catalog with no models, `atlas serve` registers the project's own small GPT-2
 * (assets/demo/, trained by tools/demo/), imports its SAEs through the ordinary import path and
 * builds their dashboards on the held-out text. Each step is skipped when already done, so an
 * interrupted first start resumes, and later starts cost one catalog read. ATLAS_DEMO=0 turns it off.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_ASSETS_DIR } from '../paths.js';
import cliProgress from 'cli-progress';
import type { Database } from '../db/client.js';
import { listModels, listDictionaries, getDictionaries } from '../db/catalog.js';
import { registerModel } from './register-model.js';
import { importDictionary } from './import-dictionary.js';
import type { EngineRegistry } from './registry.js';
import { buildDashboards } from './build-dashboards.js';

export const DEMO_DIR = DEMO_ASSETS_DIR;
export const DEMO_MODEL_ID = 'demo-gpt2';
/** Held-out tokens the first start builds dashboards on: enough for stable statistics, quick on 2 cores. */
export const DEMO_BUILD_TOKENS = 60_000;

export interface DemoManifest {
  model: { path: string; name: string };
  saes: { path: string; hook_name: string; k: number; l0: number; explained_variance: number }[];
  heldout: string;
  files: Record<
    string,
    { bytes: number; sha256: string; tensors?: Record<string, { dtype: string; shape: number[] }> }
  >;
}

export function readDemoManifest(dir = DEMO_DIR): DemoManifest | null {
  const path = join(dir, 'manifest.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as DemoManifest) : null;
}

/** `blocks.3.hook_resid_post` → `demo-L3-resid-post` */
export function demoDictionaryId(hook: string): string {
  const m = /^blocks\.(\d+)\.hook_(.+)$/.exec(hook);
  return m ? `demo-L${m[1]}-${m[2].replace(/_/g, '-')}` : `demo-${hook.replace(/[^A-Za-z0-9]+/g, '-')}`;
}

export interface SeedOptions {
  dir?: string;
  /** Held-out tokens to build on (tests use fewer). */
  buildTokens?: number;
}

export async function seedDemo(
  database: Database,
  registry: EngineRegistry,
  dataDir: string,
  log: (line: string) => void,
  opts: SeedOptions = {},
): Promise<void> {
  const dir = opts.dir ?? DEMO_DIR;
  const buildTokens = opts.buildTokens ?? DEMO_BUILD_TOKENS;
  const manifest = readDemoManifest(dir);
  if (!manifest) return;
  const models = await listModels(database);
  const hasDemo = models.some((m) => m.id === DEMO_MODEL_ID);
  if (models.length > 0 && !hasDemo) return;

  if (!hasDemo) {
    log('First start: loading the demo atlas (ATLAS_DEMO=0 skips this).');
    // The demo model was trained with <|endoftext|> first in every context, as its SAEs expect.
    await registerModel(database, {
      id: DEMO_MODEL_ID,
      path: join(dir, manifest.model.path),
      name: manifest.model.name,
      prependBos: true,
    });
  }
  const ids = manifest.saes.map((s) => demoDictionaryId(s.hook_name));
  const present = new Set((await getDictionaries(database, ids)).map((d) => d.id));
  for (const [i, sae] of manifest.saes.entries()) {
    if (present.has(ids[i])) continue;
    log(`Importing demo dictionary ${ids[i]} (${sae.hook_name})`);
    await importDictionary(database, { path: join(dir, sae.path), modelId: DEMO_MODEL_ID, id: ids[i], dataDir });
  }
  const unbuilt = (await listDictionaries(database, DEMO_MODEL_ID)).filter((d) => ids.includes(d.id) && !d.stats);
  if (unbuilt.length === 0) return;

  log(
    `Building dashboards of ${unbuilt.length} demo dictionaries on ${buildTokens.toLocaleString('en')} held-out tokens`,
  );
  const bar = new cliProgress.SingleBar(
    {
      format: 'demo build {bar} {percentage}% | {tokens} tokens | ETA {eta_formatted}',
      stream: process.stderr,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(100, 0, { tokens: 0 });
  try {
    await buildDashboards(database, registry, {
      dictionaryIds: unbuilt.map((d) => d.id),
      corpus: join(dir, manifest.heldout),
      tokens: buildTokens,
      onProgress: (p) => bar.update(Math.round(p.fraction * 100), { tokens: p.tokens }),
    });
  } finally {
    bar.stop();
  }
  log('Demo atlas ready.');
}
