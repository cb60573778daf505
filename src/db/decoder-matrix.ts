/** All decoder rows of a dictionary as one row-major Float32Array [d_sae, d_in], read in index ranges. */
import type { Database } from './client.js';

const CHUNK = 4096;

export async function readDecoderMatrix(
  database: Database,
  dictionaryId: string,
  dIn: number,
  dSae: number,
  onRows?: (done: number) => void,
): Promise<Float32Array> {
  const out = new Float32Array(dSae * dIn);
  for (let start = 0; start < dSae; start += CHUNK) {
    const rows = await database.query<{ i: number; v: string }>(
      'SELECT idx AS i, decoder::text AS v FROM feature_decoders WHERE dictionary_id = $1 AND idx >= $2 AND idx < $3',
      [dictionaryId, start, start + CHUNK],
    );
    for (const r of rows) out.set(JSON.parse(r.v) as number[], r.i * dIn);
    onRows?.(Math.min(dSae, start + CHUNK));
  }
  return out;
}
