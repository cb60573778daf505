/** The `atlas` command line. Each command lives in src/commands/<name>.ts and registers itself here. */
import { Command } from 'commander';
import { databaseError } from './app/database.js';

const program = new Command('atlas')
  .description('Feature Atlas: serve, import and explore sparse-autoencoder feature dictionaries')
  .showHelpAfterError();

type CommandModule = () => Promise<{ register(p: Command): void }>;

/**
 * Each command's modules by the name typed after `atlas`. Only the named command's load: each pulls in its own
 * stack (the server's is Apollo, GraphQL and the UI), and loading every one took 2.4 s before any command ran
 * against 0.6–1.7 s for one. Help, `help <command>` and unknown names load them all.
 */
const COMMANDS: Record<string, CommandModule[]> = {
  serve: [() => import('./commands/serve.js')],
  model: [() => import('./commands/model-add.js'), () => import('./commands/model-delete.js')],
  import: [() => import('./commands/import.js')],
  export: [() => import('./commands/export.js')],
  generate: [() => import('./commands/generate.js')],
  build: [() => import('./commands/build.js')],
  keys: [() => import('./commands/keys.js')],
  explanations: [() => import('./commands/explanations.js')],
  map: [() => import('./commands/map.js')],
  compare: [() => import('./commands/compare.js')],
  neuronpedia: [() => import('./commands/neuronpedia.js')],
  'migrate-artifacts': [() => import('./commands/migrate-artifacts.js')],
  dictionary: [() => import('./commands/dictionary.js')],
  'prune-artifacts': [() => import('./commands/prune-artifacts.js')],
};

const named = process.argv.slice(2).find((a) => !a.startsWith('-'));
const loads =
  (named !== undefined && Object.hasOwn(COMMANDS, named) && COMMANDS[named]) || Object.values(COMMANDS).flat();
for (const load of loads) (await load()).register(program);

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
