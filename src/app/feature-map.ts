/** Use case: lay out a dictionary's decoder directions in 2-D (src/engine/map/layout.ts) and store the map. */
import type { Database } from '../db/client.js';
import { requireDictionary } from '../db/catalog.js';
import { readDecoderMatrix } from '../db/decoder-matrix.js';
import { getFeatureMaps, pageMapPoints, saveFeatureMap } from '../db/feature-maps.js';
import { layoutDecoders, type MapPhase } from '../engine/map/layout.js';
import type { SessionSettings } from '../engine/runtime/session.js';
import { AtlasError } from '../errors.js';

export type MapProgressPhase = 'reading' | MapPhase | 'storing';

export interface FeatureMapRequest {
  dictionaryId: string;
  session: SessionSettings;
  seed?: number;
  neighbours?: number;
  epochs?: number;
  /** Keep an existing map (decoders do not change once imported) and return null. */
  keepExisting?: boolean;
  onProgress?: (phase: MapProgressPhase, fraction: number) => void;
}

export interface FeatureMapResult {
  features: number;
  seconds: number;
  neighbours: number;
  epochs: number;
}

/** UMAP needs more points than neighbours; below this a map says nothing. */
const MIN_FEATURES = 4;

export async function buildFeatureMap(database: Database, req: FeatureMapRequest): Promise<FeatureMapResult | null> {
  const started = Date.now();
  const dict = await requireDictionary(database, req.dictionaryId);
  if (req.keepExisting && (await getFeatureMaps(database, [dict.id])).has(dict.id)) return null;
  if (dict.dSae < MIN_FEATURES)
    throw new AtlasError(
      'UNSUPPORTED',
      `Dictionary "${dict.id}" has ${dict.dSae} features; a map needs at least ${MIN_FEATURES}.`,
    );
  const progress = req.onProgress ?? (() => undefined);
  const rows = await readDecoderMatrix(database, dict.id, dict.dIn, dict.dSae, (n) =>
    progress('reading', n / dict.dSae),
  );
  const seed = req.seed ?? 42;
  const layout = await layoutDecoders(rows, dict.dIn, {
    session: req.session,
    seed,
    neighbours: req.neighbours,
    epochs: req.epochs,
    onProgress: progress,
  });
  progress('storing', 0);
  const seconds = (Date.now() - started) / 1000;
  await saveFeatureMap(database, dict.id, layout.points, layout.bounds, {
    neighbours: layout.neighbours,
    epochs: layout.epochs,
    seed,
    seconds,
  });
  progress('storing', 1);
  return { features: dict.dSae, seconds, neighbours: layout.neighbours, epochs: layout.epochs };
}

/** Points per page: a browser fetches a 65k map in 7 requests. */
export const MAX_MAP_PAGE = 10_000;

/** Map points in index order after `afterIndex` (−1 for the first page). */
export async function mapPoints(database: Database, dictionaryId: string, first: number, afterIndex: number) {
  return pageMapPoints(database, dictionaryId, first, afterIndex);
}
