import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { withDatabase } from '../app/database.js';
import { buildFeatureMap, type MapProgressPhase } from '../app/feature-map.js';
import type { Database } from '../db/client.js';
import { integerOption, type Config } from '../config.js';

const PHASES: Record<MapProgressPhase, string> = {
  reading: 'reading decoders',
  neighbours: 'nearest neighbours',
  layout: 'UMAP layout',
  storing: 'storing',
};

/** Lays out one dictionary with a progress bar on stderr; `atlas build` calls it too. */
export async function mapWithProgress(
  database: Database,
  config: Config,
  id: string,
  opts: { seed?: number; neighbours?: number; epochs?: number; keepExisting?: boolean } = {},
): Promise<void> {
  const bar = new cliProgress.SingleBar(
    {
      format: `map ${id} {bar} {percentage}% | {phase} | {duration_formatted}`,
      stream: process.stderr,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(100, 0, { phase: PHASES.reading });
  try {
    const r = await buildFeatureMap(database, {
      dictionaryId: id,
      session: { device: config.device, threads: config.threads },
      ...opts,
      onProgress: (phase, f) => bar.update(Math.round(100 * f), { phase: PHASES[phase] }),
    });
    bar.stop();
    if (!r) {
      console.log(`${id}: already has a map (\`atlas map ${id}\` lays it out again).`);
      return;
    }
    console.log(
      `${id}: mapped ${r.features} features (UMAP, cosine, ${r.neighbours} neighbours, ${r.epochs} epochs) in ` +
        `${r.seconds.toFixed(1)} s.`,
    );
  } catch (e) {
    bar.stop();
    throw e;
  }
}

export function register(program: Command): void {
  program
    .command('map <dictionary...>')
    .description('Lay out the decoder directions of dictionaries in 2-D (UMAP on cosine distance) for the browser map')
    .option('--seed <n>', 'random seed (default 42)', integerOption('--seed'))
    .option('--neighbours <n>', 'UMAP n_neighbors (default 15)', integerOption('--neighbours'))
    .option('--epochs <n>', 'optimisation epochs (default 200–500 by size)', integerOption('--epochs'))
    .action(async (ids: string[], opts: { seed?: number; neighbours?: number; epochs?: number }) => {
      await withDatabase(async (database, config) => {
        for (const id of ids) await mapWithProgress(database, config, id, opts);
      });
    });
}
