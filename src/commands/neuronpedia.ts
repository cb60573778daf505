import type { Command } from 'commander';
import { resolve } from 'node:path';
import { withDatabase } from '../app/database.js';
import { EngineRegistry } from '../app/registry.js';
import { importNeuronpedia } from '../app/import-neuronpedia.js';

export function register(program: Command): void {
  const np = program.command('neuronpedia').description("Neuronpedia's published data");
  np.command('import <dir>')
    .description(
      "Import a dictionary's Neuronpedia export folder (features/, activations/, explanations/ of batch-N.jsonl.gz) " +
        'as its dashboards and explanations',
    )
    .requiredOption('--dictionary <id>', 'the imported dictionary the export describes')
    .action(async (dir: string, opts: { dictionary: string }) => {
      await withDatabase(async (database, config) => {
        const registry = new EngineRegistry(config, database);
        try {
          const r = await importNeuronpedia(database, registry, resolve(dir), opts.dictionary);
          console.log(
            `Imported into ${opts.dictionary}: ${r.features} features, ${r.examples} activation examples, ` +
              `${r.logits} logit tokens, ${r.explanations} explanations.`,
          );
        } finally {
          await registry.close();
        }
      });
    });
}
