/** What several commands share: opening the configured database for the length of one command. */
import { loadConfig, type Config } from '../config.js';
import { openDatabase, type Database } from '../db/client.js';

export async function withDatabase<T>(fn: (database: Database, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    return await fn(database, config);
  } finally {
    await database.close();
  }
}
