/** Builds the long-lived services the resolvers use, from the configuration. */
import { readFileSync } from 'node:fs';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
import type { Services } from './resolvers/context.js';

export const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

export async function createServices(config: Config, _database: Database): Promise<Services & { close(): Promise<void> }> {
  return {
    version: VERSION,
    executionProvider: () => config.device,
    close: async () => undefined,
  };
}
