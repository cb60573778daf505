/** The `atlas` command line. Each command lives in src/commands/<name>.ts and registers itself here. */
import { Command } from 'commander';
import { isAtlasError } from './errors.js';

const program = new Command('atlas')
  .description('Feature Atlas: serve, import and explore sparse-autoencoder feature dictionaries')
  .showHelpAfterError();

const commands: Array<() => Promise<{ register(p: Command): void }>> = [
  () => import('./commands/serve.js'),
  () => import('./commands/model-add.js'),
  () => import('./commands/import.js'),
  () => import('./commands/export.js'),
  () => import('./commands/generate.js'),
  () => import('./commands/build.js'),
  () => import('./commands/keys.js'),
  () => import('./commands/explanations.js'),
  () => import('./commands/neuronpedia.js'),
];

for (const load of commands) (await load()).register(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (isAtlasError(e)) {
    process.stderr.write(`atlas: ${e.code}: ${e.message}\n`);
    process.exitCode = 1;
  } else {
    throw e;
  }
}
