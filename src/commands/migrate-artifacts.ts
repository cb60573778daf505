import type { Command } from 'commander';
import { withDatabase } from '../app/database.js';
import { migrateArtifacts, reportMigration } from '../app/artifacts.js';
import { AtlasError } from '../errors.js';

export function register(program: Command): void {
  program
    .command('migrate-artifacts')
    .description(
      'PostgreSQL: store in the database the files of models and dictionaries added before the artifact store ' +
        '(servers also do this at start) and the converted ONNX graph of every model without one, so every ' +
        'replica can serve them without converting',
    )
    .action(async () => {
      await withDatabase(async (database, config) => {
        const onProgress = (id: string, m: string) => process.stderr.write(`atlas: ${id}: ${m}\n`);
        const report = await migrateArtifacts(database, { config, onProgress });
        reportMigration(report, (line) => console.log(line));
        if (report.missing.length > 0) {
          throw new AtlasError(
            'ARTIFACT_MISSING',
            `${report.missing.length} row(s) point at files that are not on this machine (listed above).`,
          );
        }
      });
    });
}
