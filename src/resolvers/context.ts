import type { Database } from '../db/client.js';
import type { Loaders } from '../db/loaders.js';
import type { EncodingService } from '../engine/encode.js';
import type { ExplanationEmbedder } from '../engine/explanation-embeddings.js';
import type { Auth } from '../auth.js';
import type { SkippedDictionary } from '../engine/search.js';

/** What every resolver sees: the database, this request's loaders, and the server's services. */
export interface Context {
  database: Database;
  loaders: Loaders;
  services: Services;
  /** The request's API key, checked on first use (writes call auth.require()). */
  auth: Auth;
  /** Dictionaries a search left out (files unavailable); the server reports them in the response's extensions. */
  skippedDictionaries: SkippedDictionary[];
}

/** Long-lived parts of the server that resolvers call into. */
export interface Services {
  version: string;
  executionProvider(): string;
  encoding: EncodingService;
  /** Floor of pgvector's hnsw.ef_search for every nearest-neighbour search. */
  hnswEfSearch: number;
  /** Longest text argument (ATLAS_MAX_INPUT_CHARS), checked before any resolver runs. */
  maxInputChars: number;
  /** ATLAS_REQUIRE_KEY=1: every GraphQL request, reads included, needs a key. */
  requireKey: boolean;
  /** Vector search over explanations; null until an embedding model is configured (full text only). */
  explanationEmbedder: ExplanationEmbedder | null;
}
