import type { Database } from '../db/client.js';
import type { Loaders } from '../db/loaders.js';
import type { EncodingService } from '../engine/encode.js';

/** What every resolver sees: the database, this request's loaders, and the server's services. */
export interface Context {
  database: Database;
  loaders: Loaders;
  services: Services;
}

/** Long-lived parts of the server that resolvers call into. */
export interface Services {
  version: string;
  executionProvider(): string;
  encoding: EncodingService;
}
