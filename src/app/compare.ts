/**
 * Use case: compare two dictionaries by decoder cosine (src/engine/compare/compare.ts) and store the
 * result, so asking again — in either order — reads it back instead of recomputing.
 */
import type { Database } from '../db/client.js';
import { requireDictionary } from '../db/catalog.js';
import { readDecoderMatrix } from '../db/decoder-matrix.js';
import { findComparison, pageMatches, saveComparison, type ComparisonRow, type MatchOrder } from '../db/comparisons.js';
import { compareDecoders, type ComparePhase } from '../engine/compare/compare.js';
import type { SessionSettings } from '../engine/runtime/session.js';
import { AtlasError } from '../errors.js';

export type CompareProgressPhase = 'reading' | ComparePhase | 'storing';

export interface CompareRequest {
  a: string;
  b: string;
  session: SessionSettings;
  /** Compute again even when a stored comparison exists. */
  recompute?: boolean;
  onProgress?: (phase: CompareProgressPhase, fraction: number) => void;
}

export interface CompareResult {
  comparison: ComparisonRow;
  /** True when the stored comparison was returned without computing. */
  stored: boolean;
}

/** Comparisons being computed in this process, so concurrent requests for one pair share the work. */
const inFlight = new Map<string, Promise<ComparisonRow>>();

async function compute(database: Database, req: CompareRequest): Promise<ComparisonRow> {
  const started = Date.now();
  const [a, b] = await Promise.all([requireDictionary(database, req.a), requireDictionary(database, req.b)]);
  if (a.dIn !== b.dIn) {
    throw new AtlasError(
      'DIMENSION_MISMATCH',
      `"${a.id}" reads ${a.dIn}-dimensional activations and "${b.id}" ${b.dIn}-dimensional ones; only dictionaries ` +
        `of the same width can be compared.`,
    );
  }
  const progress = req.onProgress ?? (() => undefined);
  const rowsA = await readDecoderMatrix(database, a.id, a.dIn, a.dSae, (n) =>
    progress('reading', n / (a.dSae + b.dSae)),
  );
  const rowsB = await readDecoderMatrix(database, b.id, b.dIn, b.dSae, (n) =>
    progress('reading', (a.dSae + n) / (a.dSae + b.dSae)),
  );
  const result = await compareDecoders(rowsA, rowsB, a.dIn, { session: req.session, onProgress: progress });
  progress('storing', 0);
  const one = result.oneToOne;
  let pairedB: { indices: Int32Array; cosines: Float32Array } | null = null;
  if (one) {
    pairedB = { indices: new Int32Array(b.dSae), cosines: new Float32Array(b.dSae) };
    for (let i = 0; i < a.dSae; i++) {
      pairedB.indices[one.pairs[i]] = i;
      pairedB.cosines[one.pairs[i]] = one.cosines[i];
    }
  }
  const row = await saveComparison(
    database,
    a.id,
    b.id,
    {
      meanMaxAB: result.meanMaxAB,
      meanMaxBA: result.meanMaxBA,
      histogramAB: result.histogramAB,
      histogramBA: result.histogramBA,
      oneToOne: one ? { score: one.score, leftover: one.leftover } : null,
      seconds: (Date.now() - started) / 1000,
    },
    {
      matchIndices: result.aToB.indices,
      cosines: result.aToB.cosines,
      paired: one ? { indices: one.pairs, cosines: one.cosines } : null,
    },
    {
      matchIndices: result.bToA.indices,
      cosines: result.bToA.cosines,
      paired: pairedB,
    },
  );
  progress('storing', 1);
  return row;
}

export async function compareDictionaries(database: Database, req: CompareRequest): Promise<CompareResult> {
  if (req.a === req.b)
    throw new AtlasError('BAD_USER_INPUT', `Both sides name "${req.a}"; compare two different dictionaries.`);
  if (!req.recompute) {
    const found = await findComparison(database, req.a, req.b);
    // A stored comparison outlives nothing: replacing or deleting either dictionary cascades to it.
    if (found) return { comparison: found, stored: true };
  }
  const key = [req.a, req.b].sort().join('\u0000');
  let running = inFlight.get(key);
  if (!running) {
    running = compute(database, req).finally(() => inFlight.delete(key));
    inFlight.set(key, running);
  }
  return { comparison: await running, stored: false };
}

export interface MatchPage {
  first: number;
  after: { value: number | null; index: number } | null;
  order: MatchOrder;
}

/** A page of one side's stored matches: `dictionaryId`'s features with their best match in the other. */
export async function comparisonMatches(
  database: Database,
  comparisonId: number,
  dictionaryId: string,
  req: MatchPage,
) {
  return pageMatches(database, { comparisonId, dictionaryId, ...req });
}
