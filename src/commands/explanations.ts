import type { Command } from 'commander';
import { resolve } from 'node:path';
import { withDatabase } from '../app/database.js';
import { importExplanations } from '../app/import-explanations.js';

export function register(program: Command): void {
  const explanations = program.command('explanations').description('Explanations of features');
  explanations
    .command('import <file>')
    .description(
      'Import JSON lines (or a JSON array, .gz too) of {index, text, source?, author?}; Neuronpedia export fields ' +
        'work. All or nothing.',
    )
    .option(
      '--dictionary <id>',
      'put every explanation in this dictionary (otherwise each line names it, or its modelId and layer)',
    )
    .option('--source <source>', 'source for lines that name none', 'import')
    .action(async (file: string, opts: { dictionary?: string; source: string }) => {
      await withDatabase(async (database) => {
        const result = await importExplanations(database, resolve(file), opts);
        const per = [...result.perDictionary].map(([d, n]) => `${n} in ${d}`).join(', ');
        console.log(`Imported ${result.inserted} explanations (${per}).`);
      });
    });
}
