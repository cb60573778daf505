/** Stored feature maps: one bounds row per dictionary and one (x, y) per feature, replaced atomically. */
import type { Database } from './client.js';
import { featureKeyJoin, featureKeyParams, type FeatureKey } from './features.js';

export interface MapBounds {
  minX: number;
  maxX: number;
  minY: number;
  maxY: number;
}

export interface FeatureMapRow extends MapBounds {
  dictionaryId: string;
  params: Record<string, number>;
  createdAt: Date;
}

export interface MapPoint {
  index: number;
  x: number;
  y: number;
}

/** Replaces the dictionary's map in one transaction: readers see the old map or the new one. */
export async function saveFeatureMap(
  database: Database,
  dictionaryId: string,
  points: Float32Array,
  bounds: MapBounds,
  params: Record<string, number>,
): Promise<void> {
  const n = points.length / 2;
  const idx = Array.from({ length: n }, (_, i) => i);
  const xs = Array.from({ length: n }, (_, i) => points[2 * i]);
  const ys = Array.from({ length: n }, (_, i) => points[2 * i + 1]);
  await database.transaction(async (q) => {
    await q('DELETE FROM feature_maps WHERE dictionary_id = $1', [dictionaryId]);
    await q(
      'INSERT INTO feature_maps (dictionary_id, min_x, max_x, min_y, max_y, params) VALUES ($1, $2, $3, $4, $5, $6)',
      [dictionaryId, bounds.minX, bounds.maxX, bounds.minY, bounds.maxY, JSON.stringify(params)],
    );
    await q(
      `INSERT INTO feature_map_points (dictionary_id, idx, x, y)
       SELECT $1, i, x, y FROM unnest($2::int[], $3::real[], $4::real[]) AS p(i, x, y)`,
      [dictionaryId, idx, xs, ys],
    );
  });
}

export async function getFeatureMaps(
  database: Database,
  dictionaryIds: readonly string[],
): Promise<Map<string, FeatureMapRow>> {
  const rows = await database.query<FeatureMapRow>(
    `SELECT dictionary_id AS "dictionaryId", min_x AS "minX", max_x AS "maxX", min_y AS "minY", max_y AS "maxY",
       params, created_at AS "createdAt"
     FROM feature_maps WHERE dictionary_id = ANY($1::text[])`,
    [[...dictionaryIds]],
  );
  return new Map(rows.map((r) => [r.dictionaryId, r]));
}

/** Points in index order after `afterIndex`; one more than asked tells whether a next page exists. */
export async function pageMapPoints(
  database: Database,
  dictionaryId: string,
  first: number,
  afterIndex: number,
): Promise<{ points: MapPoint[]; hasNextPage: boolean }> {
  const rows = await database.query<MapPoint>(
    'SELECT idx AS "index", x, y FROM feature_map_points WHERE dictionary_id = $1 AND idx > $2 ORDER BY idx LIMIT $3',
    [dictionaryId, afterIndex, first + 1],
  );
  return { points: rows.slice(0, first), hasNextPage: rows.length > first };
}

/** Map positions of any number of features (the DataLoader batch function). */
export async function getMapPoints(database: Database, keys: readonly FeatureKey[]): Promise<Map<string, MapPoint>> {
  if (keys.length === 0) return new Map();
  const rows = await database.query<MapPoint & { d: string }>(
    `SELECT p.dictionary_id AS d, p.idx AS "index", p.x, p.y FROM feature_map_points p ${featureKeyJoin('p', 'idx')}`,
    featureKeyParams(keys),
  );
  return new Map(rows.map((r) => [`${r.d}:${r.index}`, { index: r.index, x: r.x, y: r.y }]));
}
