import type { Command } from 'commander';
import { withDatabase } from '../app/database.js';
import { deleteDictionaryById } from '../app/delete-dictionary.js';
import { pruneAfterChange } from './prune-artifacts.js';

export function register(program: Command): void {
  const dictionary =
    program.commands.find((c) => c.name() === 'dictionary') ??
    program.command('dictionary').description('Manage the dictionaries in the catalog');
  dictionary
    .command('delete <id>')
    .description(
      'Delete a dictionary with its features, dashboards, explanations, maps and comparisons; servers drop it ' +
        'within about a second, and its stored files no other row names are pruned',
    )
    .action(async (id: string) => {
      await withDatabase(async (database, config) => {
        await deleteDictionaryById(database, id);
        console.log(`Deleted dictionary ${id}.`);
        await pruneAfterChange(database, config);
      });
    });
}
