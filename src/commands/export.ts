import type { Command } from 'commander';
import { resolve } from 'node:path';
import { withDatabase } from '../app/database.js';
import { exportDictionary } from '../app/export-dictionary.js';

export function register(program: Command): void {
  program
    .command('export <dictionary> <dir>')
    .description('Write a dictionary in SAELens format (cfg.json + sae_weights.safetensors)')
    .action(async (id: string, dir: string) => {
      await withDatabase(async (database, config) => {
        await exportDictionary(database, id, resolve(dir), config);
        console.log(`Exported ${id} to ${resolve(dir)} (SAELens format).`);
      });
    });
}
