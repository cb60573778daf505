import type { Command } from 'commander';
import { resolve, basename } from 'node:path';
import { withDatabase } from '../app/database.js';
import { registerModel } from '../app/register-model.js';

export function register(program: Command): void {
  const model =
    program.commands.find((c) => c.name() === 'model') ??
    program.command('model').description('Manage the models in the catalog');
  model
    .command('add <path>')
    .description(
      'Register a model: a llama2.c .bin, a Hugging Face folder (config.json + safetensors) or a ready .onnx file',
    )
    .requiredOption('--id <id>', 'catalog id (letters, digits, . _ -)')
    .option('--tokenizer <path>', 'tokenizer file (default: found beside the model)')
    .option('--name <name>', 'display name (default: the file name)')
    .option(
      '--bos',
      'default BOS policy: start sequences with BOS (default for llama); dictionaries whose files say follow their own',
    )
    .option('--no-bos', 'default BOS policy: no BOS (default for gpt2); dictionaries whose files say follow their own')
    .action(async (path: string, opts: { id: string; tokenizer?: string; name?: string; bos?: boolean }) => {
      await withDatabase(async (database, config) => {
        const row = await registerModel(database, {
          id: opts.id,
          path: resolve(path),
          tokenizerPath: opts.tokenizer ? resolve(opts.tokenizer) : undefined,
          name: opts.name ?? basename(path),
          prependBos: opts.bos,
          convert: { dataDir: config.dataDir, onProgress: (m) => process.stderr.write(`atlas: ${opts.id}: ${m}\n`) },
        });
        console.log(
          `Registered model ${row.id}: ${row.architecture}, d_model ${row.dModel}, ${row.nLayers} layers, vocab ` +
            `${row.vocabSize}, context ${row.contextLength}, ${row.prependBos ? 'BOS first' : 'no BOS'}.`,
        );
      });
    });
}
