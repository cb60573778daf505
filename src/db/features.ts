/**
 * Feature rows (table features) and their decoder vectors (table feature_decoders): batched lookups,
 * keyset-paginated listings and bulk writes.
 */
import type { Database } from './client.js';
import { AtlasError } from '../errors.js';
import { features } from './schema.js';
import { selectList } from './columns.js';
import { binaryTuples, type BinaryRows } from './copy.js';

export interface FeatureRow {
  dictionaryId: string;
  index: number;
  decoderNorm: number;
  density: number | null;
  maxActivation: number | null;
  meanActivation: number | null;
  histogram: { edges: number[]; counts: number[] } | null;
  label: string | null;
  labelSource: string | null;
}

/** A FeatureRow's columns, with idx read as index. */
const COLUMNS = selectList(features, 'f', { rename: { idx: 'index' } });

export interface FeatureKey {
  dictionaryId: string;
  index: number;
}

export const featureKey = (k: FeatureKey): string => `${k.dictionaryId}:${k.index}`;

/**
 * Batched lookups by feature key: join table `alias` to the keys passed as $1 (dictionary ids) and
 * $2 (indices), which `featureKeyParams` builds.
 */
export function featureKeyJoin(alias: string, indexColumn: string): string {
  return (
    `JOIN unnest($1::text[], $2::int[]) AS k(d, i) ON ${alias}.dictionary_id = k.d AND ${alias}.${indexColumn} ` +
    `= k.i`
  );
}

export function featureKeyParams(keys: readonly FeatureKey[]): [string[], number[]] {
  return [keys.map((k) => k.dictionaryId), keys.map((k) => k.index)];
}

/** One query for any number of features across dictionaries (the DataLoader batch function). */
export async function getFeatures(database: Database, keys: readonly FeatureKey[]): Promise<Map<string, FeatureRow>> {
  const out = new Map<string, FeatureRow>();
  if (keys.length === 0) return out;
  const rows = await database.query<FeatureRow>(
    `SELECT ${COLUMNS} FROM features f ${featureKeyJoin('f', 'idx')}`,
    featureKeyParams(keys),
  );
  for (const r of rows) out.set(featureKey(r), r);
  return out;
}

export async function getDecoders(database: Database, keys: readonly FeatureKey[]): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  if (keys.length === 0) return out;
  const rows = await database.query<{ d: string; i: number; decoder: string }>(
    'SELECT f.dictionary_id AS d, f.idx AS i, f.decoder::text AS decoder FROM feature_decoders f ' +
      featureKeyJoin('f', 'idx'),
    featureKeyParams(keys),
  );
  for (const r of rows) out.set(`${r.d}:${r.i}`, JSON.parse(r.decoder) as number[]);
  return out;
}

export type FeatureOrder = 'INDEX' | 'DENSITY' | 'MAX_ACTIVATION';
export type Direction = 'ASC' | 'DESC';

const ORDER_COLUMN: Record<FeatureOrder, string> = {
  INDEX: 'idx',
  DENSITY: 'density',
  MAX_ACTIVATION: 'max_activation',
};

export interface PageRequest {
  dictionaryId: string;
  orderBy: FeatureOrder;
  direction: Direction;
  first: number;
  /** Decoded cursor: the sort value (null for not-yet-computed) and index of the last row seen. */
  after: { value: number | null; index: number } | null;
}

export interface Page {
  rows: (FeatureRow & { sortValue: number | null })[];
  hasNextPage: boolean;
}

/**
 * Keyset pagination with ties broken by index ascending. Rows whose statistic is not computed yet
 * (NULL) come last in either direction, so a fresh dictionary still pages through all its features.
 */
export async function pageFeatures(database: Database, req: PageRequest): Promise<Page> {
  const col = ORDER_COLUMN[req.orderBy];
  const params: unknown[] = [req.dictionaryId, req.first + 1];
  let where = 'dictionary_id = $1';
  if (req.after) {
    const cmp = req.direction === 'ASC' ? '>' : '<';
    if (req.orderBy === 'INDEX') {
      params.push(req.after.index);
      where += ` AND idx ${cmp} $3`;
    } else if (req.after.value === null) {
      params.push(req.after.index);
      where += ` AND ${col} IS NULL AND idx > $3`;
    } else {
      params.push(req.after.value, req.after.index);
      where += ` AND (${col} IS NULL OR ${col} ${cmp} $3 OR (${col} = $3 AND idx > $4))`;
    }
  }
  const order = req.orderBy === 'INDEX' ? `idx ${req.direction}` : `${col} ${req.direction} NULLS LAST, idx ASC`;
  const rows = await database.query<FeatureRow & { sortValue: number | null }>(
    `SELECT ${COLUMNS}, ${col}::float8 AS "sortValue" FROM features f WHERE ${where} ORDER BY ${order} LIMIT $2`,
    params,
  );
  const hasNextPage = rows.length > req.first;
  return { rows: hasNextPage ? rows.slice(0, req.first) : rows, hasNextPage };
}

export async function countFeatures(
  database: Database,
  dictionaryIds: readonly string[],
): Promise<Map<string, number>> {
  const rows = await database.query<{ d: string; n: number }>(
    'SELECT dictionary_id AS d, count(*)::int AS n FROM features WHERE dictionary_id = ANY($1::text[]) GROUP BY ' +
      'dictionary_id',
    [[...dictionaryIds]],
  );
  return new Map(rows.map((r) => [r.d, r.n]));
}

/**
 * Streams decoder rows into feature_decoders with binary COPY (no decimal text on either side), then
 * writes the features rows (norm ‖row‖₂ in float64, stored as float4; the shipped density if any)
 * from the norms kept on the way. `batches` yields consecutive row blocks ([n, dIn] row-major)
 * starting at feature 0; `onRows` is told each block's row count once it is encoded.
 */
export async function copyDecoders(
  database: Database,
  dictionaryId: string,
  dIn: number,
  batches: AsyncIterable<Float32Array> | Iterable<Float32Array>,
  onRows?: (n: number) => void,
  density: Float32Array | null = null,
): Promise<number> {
  const norms: number[] = [];
  const encode = (out: BinaryRows, block: Float32Array) => {
    if (block.length % dIn !== 0)
      throw new AtlasError('BAD_FILE', `Decoder block of ${block.length} values is not a multiple of d_in ${dIn}.`);
    const n = block.length / dIn;
    for (let r = 0; r < n; r++) {
      const row = block.subarray(r * dIn, (r + 1) * dIn);
      let sq = 0;
      for (let j = 0; j < dIn; j++) sq += row[j] * row[j];
      out.row(3).text(dictionaryId).int4(norms.length).vector(row);
      norms.push(Math.sqrt(sq));
    }
    onRows?.(n);
  };
  await database.copyIn('feature_decoders', ['dictionary_id', 'idx', 'decoder'], binaryTuples(batches, encode));
  const encodeFeature = (out: BinaryRows, i: number) => {
    out
      .row(density ? 4 : 3)
      .text(dictionaryId)
      .int4(i)
      .float4(norms[i]);
    if (density) out.float4(density[i]);
  };
  const columns = ['dictionary_id', 'idx', 'decoder_norm', ...(density ? ['density'] : [])];
  await database.copyIn('features', columns, binaryTuples(norms.keys(), encodeFeature));
  return norms.length;
}
