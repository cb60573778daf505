/** Reading the catalog: server facts, models, dictionaries and pages of a dictionary's features. */
import type { Database } from '../db/client.js';
import { listDictionaries, listModels, requireModel, type DictionaryRow } from '../db/catalog.js';
import { pageFeatures, type Direction, type FeatureOrder, type Page } from '../db/features.js';
import type { Services } from './services.js';

export { listModels };

export async function serverInfo(database: Database, services: Services) {
  const [ext] = await database.query<{ v: string }>(
    "SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'",
  );
  return {
    version: services.version,
    database: `${database.kind}: ${database.description}`,
    executionProvider: services.executionProvider() === 'cuda' ? ('CUDA' as const) : ('CPU' as const),
    pgvectorVersion: ext?.v ?? null,
    resident: {
      bytes: services.resident.bytes,
      maxBytes: services.resident.maxBytes,
      // Keys hold a row's artifact version after a NUL (artifactKey): shown as `id@version`.
      entries: services.resident.list().map((e) => ({ ...e, key: e.key.replace('\0', '@') })),
      ...services.resident.counts,
    },
  };
}

/** The ready dictionaries of one model (NOT_FOUND for an unknown model), or of all models. */
export async function dictionariesOf(database: Database, modelId: string | null | undefined): Promise<DictionaryRow[]> {
  if (modelId) await requireModel(database, modelId);
  return listDictionaries(database, modelId ?? undefined);
}

/** Rows per page of a connection (checked at the resolver edge, src/resolvers/bounds.ts). */
export const MAX_PAGE = 100;

export interface FeaturePageRequest {
  first: number;
  after: { value: number | null; index: number } | null;
  orderBy: FeatureOrder;
  /** Default: ascending by index, descending by a statistic. */
  direction?: Direction | null;
}

/** The direction a feature page is read in: the one asked for, else ascending by index, descending by statistics. */
export function featureDirection(orderBy: FeatureOrder, direction: Direction | null | undefined): Direction {
  return direction ?? (orderBy === 'INDEX' ? 'ASC' : 'DESC');
}

export async function featurePage(database: Database, dictionaryId: string, req: FeaturePageRequest): Promise<Page> {
  const direction = featureDirection(req.orderBy, req.direction);
  return pageFeatures(database, { dictionaryId, orderBy: req.orderBy, direction, first: req.first, after: req.after });
}
