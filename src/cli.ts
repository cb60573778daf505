/** The `atlas` command line. Each command lives in src/commands/<name>.ts and registers itself here. */
import { Command } from 'commander';
import { databaseError } from './app/database.js';

const program = new Command('atlas')
  .description('Feature Atlas: serve, import and explore sparse-autoencoder feature dictionaries')
  .showHelpAfterError();

const commands: Array<() => Promise<{ register(p: Command): void }>> = [
  () => import('./commands/serve.js'),
  () => import('./commands/model-add.js'),
  () => import('./commands/model-delete.js'),
  () => import('./commands/import.js'),
  () => import('./commands/export.js'),
  () => import('./commands/generate.js'),
  () => import('./commands/build.js'),
  () => import('./commands/keys.js'),
  () => import('./commands/explanations.js'),
  () => import('./commands/map.js'),
  () => import('./commands/compare.js'),
  () => import('./commands/neuronpedia.js'),
  () => import('./commands/migrate-artifacts.js'),
  () => import('./commands/dictionary.js'),
  () => import('./commands/prune-artifacts.js'),
];

for (const load of commands) (await load()).register(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // drizzle wraps coded errors and the driver's in its own; databaseError finds the code.
  const coded = databaseError(e);
  if (coded) {
    process.stderr.write(`atlas: ${coded.code}: ${coded.message}\n`);
    process.exitCode = 1;
  } else {
    throw e;
  }
}
