/**
 * A deliberately naive transcription of llama2.c run.c's tokenizer (build_tokenizer, str_lookup,
 * encode, decode) for checking src/engine/tokenizers/llama2c.ts: byte strings, a sorted vocabulary
 * searched by byte comparison, and the O(n^2) rescan-every-pair merge loop.
 */
import { readFileSync } from 'node:fs';

export interface ReferenceVocab {
  pieces: Buffer[];
  scores: number[];
  sorted: { str: Buffer; id: number }[];
}

export function readReferenceVocab(path: string): ReferenceVocab {
  const buf = readFileSync(path);
  const pieces: Buffer[] = [];
  const scores: number[] = [];
  for (let off = 4; off < buf.length;) {
    scores.push(buf.readFloatLE(off));
    const len = buf.readInt32LE(off + 4);
    pieces.push(buf.subarray(off + 8, off + 8 + len));
    off += 8 + len;
  }
  const sorted = pieces.map((str, id) => ({ str, id })).sort((a, b) => Buffer.compare(a.str, b.str));
  return { pieces, scores, sorted };
}

function strLookup(v: ReferenceVocab, s: Buffer): number {
  let lo = 0;
  let hi = v.sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = Buffer.compare(s, v.sorted[mid].str);
    if (c === 0) return v.sorted[mid].id;
    if (c < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return -1;
}

export function referenceEncode(v: ReferenceVocab, text: string, bos: boolean): number[] {
  const bytes = Buffer.from(text, 'utf8');
  const tokens: number[] = [];
  if (bos) tokens.push(1);
  if (bytes.length > 0) tokens.push(strLookup(v, Buffer.from(' ')));
  let strBuffer: number[] = [];
  for (let c = 0; c < bytes.length; c++) {
    if ((bytes[c] & 0xc0) !== 0x80) strBuffer = [];
    strBuffer.push(bytes[c]);
    // run.c reads the byte after the text as the C string's NUL terminator.
    const nextByte = c + 1 < bytes.length ? bytes[c + 1] : 0;
    if ((nextByte & 0xc0) === 0x80 && strBuffer.length < 4) continue;
    const id = strLookup(v, Buffer.from(strBuffer));
    if (id !== -1) tokens.push(id);
    else for (const b of strBuffer) tokens.push(b + 3);
    strBuffer = [];
  }
  for (;;) {
    let bestScore = Math.fround(-1e10);
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = strLookup(v, Buffer.concat([v.pieces[tokens[i]], v.pieces[tokens[i + 1]]]));
      if (id !== -1 && v.scores[id] > bestScore) {
        bestScore = v.scores[id];
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

/** run.c's decode(prev_token, token) for one token: the piece's bytes. */
export function referenceDecodePiece(v: ReferenceVocab, prev: number, token: number): Buffer {
  let piece = v.pieces[token];
  if (prev === 1 && piece[0] === 0x20) piece = piece.subarray(1);
  const m = /^<0x([0-9A-F]{2})>$/.exec(piece.toString('latin1'));
  return m ? Buffer.of(parseInt(m[1], 16)) : piece;
}
