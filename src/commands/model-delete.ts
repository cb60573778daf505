import type { Command } from 'commander';
import { withDatabase } from '../app/database.js';
import { deleteModelById } from '../app/delete-model.js';
import { pruneAfterChange } from './prune-artifacts.js';

export function register(program: Command): void {
  const model =
    program.commands.find((c) => c.name() === 'model') ??
    program.command('model').description('Manage the models in the catalog');
  model
    .command('delete <id>')
    .description(
      'Delete a model; refused while it has dictionaries unless --with-dictionaries deletes them too. Servers ' +
        'drop it within about a second, and its stored files and converted graph no other row needs are pruned',
    )
    .option('--with-dictionaries', "delete the model's dictionaries too, each as `atlas dictionary delete` does")
    .action(async (id: string, opts: { withDictionaries?: boolean }) => {
      await withDatabase(async (database, config) => {
        const { dictionaries } = await deleteModelById(database, id, opts);
        const also = dictionaries.length > 0 ? ` and its dictionaries ${dictionaries.join(', ')}` : '';
        console.log(`Deleted model ${id}${also}.`);
        await pruneAfterChange(database, config, { graphs: true });
      });
    });
}
