import type { Command } from 'commander';
import { withDatabase } from '../app/database.js';
import { createApiKey, listApiKeys, revokeApiKey } from '../app/keys.js';

export function register(program: Command): void {
  const keys = program.command('keys').description('API keys for writes (and for reads when ATLAS_REQUIRE_KEY=1)');
  keys
    .command('create')
    .description('Make a key; it is printed once and only its hash is stored')
    .requiredOption('--name <name>', 'who or what will use the key')
    .action(async (opts: { name: string }) => {
      await withDatabase(async (database) => {
        const { key, row } = await createApiKey(database, opts.name);
        console.log(
          `Created key ${row.id} (${row.prefix}…) for "${row.name}". It is shown only now; send it as ` +
            `"Authorization: Bearer <key>":`,
        );
        console.log(key);
      });
    });
  keys
    .command('list')
    .description('List keys: id, prefix, name, created, revoked')
    .action(async () => {
      await withDatabase(async (database) => {
        const rows = await listApiKeys(database);
        if (rows.length === 0) return console.log('No API keys. Make one with `atlas keys create --name NAME`.');
        console.log(['id', 'prefix', 'created', 'status', 'name'].join('\t'));
        for (const r of rows) {
          console.log(
            [
              r.id,
              r.prefix,
              r.createdAt.toISOString(),
              r.revokedAt ? `revoked ${r.revokedAt.toISOString()}` : 'active',
              r.name,
            ].join('\t'),
          );
        }
      });
    });
  keys
    .command('revoke <idOrPrefix>')
    .description('Revoke a key by id, prefix (from `atlas keys list`) or the key itself')
    .action(async (idOrPrefix: string) => {
      await withDatabase(async (database) => {
        const row = await revokeApiKey(database, idOrPrefix);
        console.log(`Revoked key ${row.id} (${row.prefix}…, "${row.name}") at ${row.revokedAt!.toISOString()}.`);
      });
    });
}
