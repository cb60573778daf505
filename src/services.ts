/** Builds the long-lived services the resolvers use, from the configuration. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './paths.js';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
import type { Services } from './resolvers/context.js';
import { createSession, type ExecutionProvider } from './engine/runtime/session.js';
import { node, serializeModel, valueInfo } from './engine/onnx/proto.js';
import { EngineRegistry } from './engine/registry.js';
import { EncodingService } from './engine/encode.js';

export const VERSION: string = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version;

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

export async function createServices(config: Config, _database: Database): Promise<Services & { registry: EngineRegistry; close(): Promise<void> }> {
  const provider = await probeExecutionProvider(config);
  const registry = new EngineRegistry(config);
  return {
    version: VERSION,
    executionProvider: () => provider,
    encoding: new EncodingService(registry, config),
    hnswEfSearch: config.hnswEfSearch,
    maxInputChars: config.maxInputChars,
    requireKey: config.requireKey,
    explanationEmbedder: null,
    registry,
    close: () => registry.close(),
  };
}
