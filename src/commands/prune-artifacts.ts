import type { Command } from 'commander';
import { join } from 'node:path';
import { withDatabase, type Database } from '../app/database.js';
import {
  PRUNE_GRACE_MINUTES,
  pruneArtifacts,
  pruneCache,
  pruneConvertedGraphs,
  type GraphPrune,
  type PruneReport,
} from '../app/artifacts.js';
import { cacheDirOf, type Config } from '../config.js';
import { AtlasError } from '../errors.js';

const describe = (r: PruneReport) =>
  `Pruned ${r.blobs} stored file(s) (${(r.bytes / 2 ** 20).toFixed(1)} MiB) that no model or dictionary names.`;

const describeGraphs = (r: GraphPrune, dataDir: string) =>
  r.kept
    ? `Kept every converted graph under ${join(dataDir, 'onnx')}: ${r.kept}.`
    : `Removed ${r.removed} converted graph folder(s) under ${join(dataDir, 'onnx')} that no model needs.`;

/**
 * After `--replace` or a deletion: the stored files left unnamed (and, after a model's deletion, this
 * machine's converted graphs no model needs), older than the default grace. The change is already
 * committed, so a prune that fails only says so; the next prune (or `atlas prune-artifacts`) does it.
 */
export async function pruneAfterChange(
  database: Database,
  config: Pick<Config, 'dataDir' | 'cacheDir'>,
  opts: { graphs?: boolean } = {},
): Promise<void> {
  try {
    const report = await pruneArtifacts(database, config.dataDir);
    if (report.blobs > 0) console.log(describe(report));
    if (opts.graphs) {
      const graphs = await pruneConvertedGraphs(database, config);
      if (graphs.removed > 0 || graphs.kept) console.log(describeGraphs(graphs, config.dataDir));
    }
  } catch (e) {
    console.error(`atlas: pruning stored files failed (${(e as Error).message}); run \`atlas prune-artifacts\` later.`);
  }
}

export function register(program: Command): void {
  program
    .command('prune-artifacts')
    .description(
      'Delete stored model and dictionary files that no row names any more (after --replace or a deletion), and ' +
        "this machine's cached copies of them and the converted ONNX graphs no model needs",
    )
    .option(
      '--grace-minutes <n>',
      `keep files stored or used within the last n minutes (an import in flight stores its files before its row)`,
      String(PRUNE_GRACE_MINUTES),
    )
    .action(async (opts: { graceMinutes: string }) => {
      const grace = Number(opts.graceMinutes);
      if (!Number.isFinite(grace) || grace < 0) {
        throw new AtlasError(
          'BAD_USER_INPUT',
          `--grace-minutes must be a number of minutes ≥ 0, not "${opts.graceMinutes}".`,
        );
      }
      await withDatabase(async (database, config) => {
        console.log(describe(await pruneArtifacts(database, config.dataDir, grace)));
        const cached = await pruneCache(database, config, grace);
        console.log(`Removed ${cached} cached version folder(s) under ${cacheDirOf(config)}.`);
        console.log(describeGraphs(await pruneConvertedGraphs(database, config, grace), config.dataDir));
      });
    });
}
