/** The long-lived services of a server process, built once from the configuration. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { createSession, type ExecutionProvider, type SessionSettings } from '../engine/runtime/session.js';
import { node, serializeModel, valueInfo } from '../engine/onnx/proto.js';
import { EngineRegistry } from './registry.js';
import { ResidentSet } from './resident.js';
import { EncodingService } from './encode.js';
import { NearestService } from './nearest.js';
import { CatalogCache } from './catalog-cache.js';
import { Freshness } from './freshness.js';

export const VERSION: string = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version;

export interface Services {
  version: string;
  executionProvider(): string;
  /** Everything kept loaded (models, encoders, decoder matrices), bounded by ATLAS_MAX_RESIDENT_MB. */
  resident: ResidentSet;
  registry: EngineRegistry;
  encoding: EncodingService;
  nearest: NearestService;
  /** PostgreSQL or PGlite catalogs: drops what was loaded for rows changed elsewhere (src/app/freshness.ts). */
  freshness?: Freshness;
  /** Floor of pgvector's hnsw.ef_search for every nearest-neighbour search. */
  hnswEfSearch: number;
  /** Longest text argument (ATLAS_MAX_INPUT_CHARS), checked before any resolver runs. */
  maxInputChars: number;
  /** ATLAS_REQUIRE_KEY=1: every GraphQL request, reads included, needs a key. */
  requireKey: boolean;
  /** Device and threads for computations outside the model registry (dictionary comparisons, maps). */
  session: SessionSettings;
  close(): Promise<void>;
}

/**
 * Opens a one-node session at start so the provider is known (and ATLAS_DEVICE=cuda fails fast, and
 * auto logs its fallback once) before the first model is loaded.
 */
async function probeExecutionProvider(config: Config): Promise<ExecutionProvider> {
  const probe = serializeModel({
    name: 'probe',
    nodes: [node('Identity', ['x'], ['y'])],
    initializers: [],
    inputs: [valueInfo('x', 'float', [1])],
    outputs: [valueInfo('y', 'float', [1])],
  });
  const { session, provider } = await createSession(probe, { device: config.device, threads: config.threads });
  await session.release();
  return provider;
}

/** `database`: where a PostgreSQL catalog's model and dictionary files are fetched from (src/app/artifacts.ts). */
export async function createServices(config: Config, database?: Database): Promise<Services> {
  const provider = await probeExecutionProvider(config);
  const log = (line: string) => process.stderr.write(`atlas: ${line}\n`);
  const resident = new ResidentSet(config.maxResidentBytes, log);
  const registry = new EngineRegistry(config, database, resident);
  // Drops what was loaded for rows deleted or replaced through other processes (replicas, the CLI).
  const freshness = database && new Freshness(database, resident, registry.artifacts, log);
  // Only PostgreSQL has other writers: a PGlite folder is open in this process alone (src/db/client.ts).
  if (database?.kind === 'postgres') freshness?.start();
  return {
    version: VERSION,
    executionProvider: () => provider,
    resident,
    registry,
    freshness,
    encoding: new EncodingService(
      registry,
      config,
      new CatalogCache(undefined, undefined, undefined, (kind, id) => freshness?.missing(kind, id)),
    ),
    nearest: new NearestService(resident, config),
    hnswEfSearch: config.hnswEfSearch,
    maxInputChars: config.maxInputChars,
    requireKey: config.requireKey,
    session: { device: config.device, threads: config.threads },
    async close() {
      await freshness?.stop();
      await registry.close();
    },
  };
}
