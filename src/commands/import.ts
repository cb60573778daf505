import type { Command } from 'commander';
import { resolve } from 'node:path';
import { withDatabase } from '../app/database.js';
import { importDictionary } from '../app/import-dictionary.js';
import { startProgress, type Progress } from './progress.js';
import { pruneAfterChange } from './prune-artifacts.js';

export function register(program: Command): void {
  program
    .command('import <path>')
    .description(
      'Import an SAE dictionary (SAELens, sparsify, Llama Scope or dictionary_learning folder, Gemma Scope ' +
        'params.npz, OpenAI or Goodfire .pt/.pth) for a registered model',
    )
    .requiredOption('--model <id>', 'the model the dictionary was trained on (see `atlas model add`)')
    .option('--id <id>', 'dictionary id (default: the folder name)')
    .option('--hook <name>', 'hook point, e.g. blocks.3.hook_resid_post (default: from cfg.json)')
    .option(
      '--hook-out <name>',
      "transcoders: the hook reconstructed (default: the file's, else the MLP output of an MLP-input hook)",
    )
    .option('--replace', 'overwrite a dictionary with the same id')
    .action(
      async (
        path: string,
        opts: { model: string; id?: string; hook?: string; hookOut?: string; replace?: boolean },
      ) => {
        await withDatabase(async (database, config) => {
          const started = Date.now();
          let progress: Progress | null = null;
          let total = 0;
          let done = 0;
          const row = await importDictionary(database, {
            path: resolve(path),
            modelId: opts.model,
            id: opts.id,
            hook: opts.hook,
            hookOut: opts.hookOut,
            replace: opts.replace,
            dataDir: config.dataDir,
            progress: {
              start: (n) => {
                total = n;
                progress = startProgress('import', 'features');
              },
              rows: (n) => {
                done += n;
                progress?.update(done, done / total);
              },
              indexing: () => {
                progress?.note('building the HNSW index…');
                progress?.stop();
                progress = null;
              },
            },
          }).finally(() => progress?.stop());
          const seconds = (Date.now() - started) / 1000;
          console.log(
            `Imported ${row.id}: ${row.architecture}, ${row.dSae} features × ${row.dIn} at ` +
              `${row.hookPoint}${row.hookPointOut ? ` → ${row.hookPointOut}` : ''} of ${row.modelId} in ` +
              `${seconds.toFixed(1)} s (${Math.round(row.dSae / seconds)} features/s).`,
          );
          // The replaced version's files are named by no row now.
          if (opts.replace) await pruneAfterChange(database, config);
        });
      },
    );
}
