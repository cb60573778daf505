import type { Command } from 'commander';
import { withDatabase, type Database } from '../app/database.js';
import { PRUNE_GRACE_MINUTES, pruneArtifacts, pruneCache, type PruneReport } from '../app/artifacts.js';
import { cacheDirOf } from '../config.js';
import { AtlasError } from '../errors.js';

const describe = (r: PruneReport) =>
  `Pruned ${r.blobs} stored file(s) (${(r.bytes / 2 ** 20).toFixed(1)} MiB) that no model or dictionary names.`;

/**
 * After `--replace` or a deletion: the stored files left unnamed, older than the default grace. The change
 * is already committed, so a prune that fails only says so; the next prune (or `atlas prune-artifacts`) does it.
 */
export async function pruneAfterChange(database: Database, dataDir: string): Promise<void> {
  try {
    const report = await pruneArtifacts(database, dataDir);
    if (report.blobs > 0) console.log(describe(report));
  } catch (e) {
    console.error(`atlas: pruning stored files failed (${(e as Error).message}); run \`atlas prune-artifacts\` later.`);
  }
}

export function register(program: Command): void {
  program
    .command('prune-artifacts')
    .description(
      'Delete stored model and dictionary files that no row names any more (after --replace or a deletion), and ' +
        "this machine's cached copies of them",
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
      });
    });
}
