/**
 * The llama2.c tokenizer (`tokenizer.bin`, `tok512.bin`): a SentencePiece BPE vocabulary exported
 * as int32 max_token_length, then per token float32 score, int32 byte length, bytes. Encoding and
 * decoding follow llama2.c's run.c; the merge loop uses a heap instead of run.c's rescan so that
 * long texts stay fast, with the same choice at every step (highest score, leftmost on ties).
 */
import { readFileSync } from 'node:fs';
import { AtlasError } from '../../errors.js';
import { byteEscape, displayBytes, parseByteToken } from './display.js';
import type { Tokenizer } from './types.js';

const UNK = 0;
const BOS = 1;
const EOS = 2;
/** run.c's byte fallback: byte b is token b + 3 (after <unk>, <s>, </s>). */
const BYTE_OFFSET = 3;
const MIN_VOCAB = BYTE_OFFSET + 256;
/** run.c starts its best-score search at -1e10 (a float), so pairs scoring at or below it never merge. */
const NO_MERGE = Math.fround(-1e10);
const MAX_TOKEN_LENGTH_LIMIT = 1 << 16;

export class Llama2cTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId = BOS;
  readonly eosId = EOS;
  /** Pieces as latin1 strings (one char per byte), so that map lookups compare bytes as run.c's strcmp does. */
  private readonly keys: string[];
  private readonly scores: Float32Array;
  private readonly ids = new Map<string, number>();
  /** Per token: the raw byte of a `<0xNN>` piece, else -1. */
  private readonly byteOf: Int16Array;
  private readonly dummyPrefix: number;
  private readonly texts: string[];

  private constructor(keys: string[], scores: Float32Array) {
    this.vocabSize = keys.length;
    this.keys = keys;
    this.scores = scores;
    this.byteOf = new Int16Array(keys.length);
    // run.c binary-searches a sorted copy, so duplicates resolve arbitrarily; the first id is as good and stable.
    keys.forEach((k, id) => {
      if (!this.ids.has(k)) this.ids.set(k, id);
      this.byteOf[id] = parseByteToken(k);
    });
    this.dummyPrefix = this.ids.get(' ') ?? BYTE_OFFSET + 0x20;
    this.texts = keys.map((k, id) => this.displayText(k, id));
  }

  static open(path: string): Llama2cTokenizer {
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (e) {
      throw new AtlasError('BAD_FILE', `Cannot read llama2.c tokenizer ${path}: ${(e as Error).message}`);
    }
    return Llama2cTokenizer.parse(buf, path);
  }

  /** Parses the file's bytes; `source` names the file in error messages. Reads records up to the end of the file. */
  static parse(buf: Buffer, source: string): Llama2cTokenizer {
    const bad = (why: string) =>
      new AtlasError('BAD_FILE', `${source} is not a valid llama2.c tokenizer file: ${why}.`, { path: source });
    if (buf.length < 4) throw bad(`it has ${buf.length} bytes, fewer than the 4-byte header`);
    const maxLen = buf.readInt32LE(0);
    if (maxLen <= 0 || maxLen > MAX_TOKEN_LENGTH_LIMIT) throw bad(`max_token_length is ${maxLen}`);
    const keys: string[] = [];
    const scores: number[] = [];
    let off = 4;
    while (off < buf.length) {
      const i = keys.length;
      if (off + 8 > buf.length) throw bad(`token ${i} is truncated (header at byte ${off} runs past the end)`);
      const score = buf.readFloatLE(off);
      const len = buf.readInt32LE(off + 4);
      if (len < 0 || len > maxLen) throw bad(`token ${i} has length ${len}, outside 0..max_token_length=${maxLen}`);
      if (off + 8 + len > buf.length) throw bad(`token ${i} is truncated (needs ${len} bytes at byte ${off + 8})`);
      keys.push(buf.toString('latin1', off + 8, off + 8 + len));
      scores.push(score);
      off += 8 + len;
    }
    if (keys.length < MIN_VOCAB)
      throw bad(`it holds ${keys.length} tokens, fewer than the ${MIN_VOCAB} of <unk>, <s>, </s> and 256 byte tokens`);
    for (let b = 0; b < 256; b++) {
      if (keys[BYTE_OFFSET + b] !== byteEscape(b)) {
        throw bad(
          `token ${BYTE_OFFSET + b} is ${JSON.stringify(keys[BYTE_OFFSET + b])}, expected the byte token ` +
            `${byteEscape(b)}`,
        );
      }
    }
    return new Llama2cTokenizer(keys, Float32Array.from(scores));
  }

  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    const bytes = Buffer.from(text, 'utf8');
    const seq: number[] = [];
    if (opts.bos ?? true) seq.push(BOS);
    if (bytes.length > 0) seq.push(this.dummyPrefix);
    // One UTF-8 character at a time (a lead byte plus at most 3 continuation bytes, as run.c groups them).
    // Unlike run.c, which reads a C string, a NUL character does not end the text: it becomes byte token <0x00>.
    let i = 0;
    while (i < bytes.length) {
      let j = i + 1;
      while (j < bytes.length && (bytes[j] & 0xc0) === 0x80 && j - i < 4) j++;
      const id = this.ids.get(bytes.toString('latin1', i, j));
      if (id !== undefined) seq.push(id);
      else for (let k = i; k < j; k++) seq.push(bytes[k] + BYTE_OFFSET);
      i = j;
    }
    return this.merge(seq);
  }

  /**
   * run.c's loop: merge the adjacent pair whose concatenation is the best-scoring vocabulary entry,
   * leftmost on ties, until none merges. Here the sequence is a linked list and candidate pairs sit
   * in a heap; a candidate is stale once either node changed (its version moved on).
   */
  private merge(seq: number[]): number[] {
    const n = seq.length;
    if (n < 2) return seq;
    const tok = Int32Array.from(seq);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const version = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap();
    const consider = (l: number) => {
      const r = next[l];
      if (l < 0 || r < 0) return;
      const id = this.ids.get(this.keys[tok[l]] + this.keys[tok[r]]);
      if (id === undefined || !(this.scores[id] > NO_MERGE)) return;
      heap.push({ score: this.scores[id], left: l, right: r, id, vLeft: version[l], vRight: version[r] });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    let count = n;
    for (let c = heap.pop(); c; c = heap.pop()) {
      if (version[c.left] !== c.vLeft || version[c.right] !== c.vRight) continue;
      const { left, right } = c;
      tok[left] = c.id;
      version[left]++;
      version[right]++;
      const after = next[right];
      next[left] = after;
      if (after >= 0) prev[after] = left;
      count--;
      consider(prev[left]);
      consider(left);
    }
    const out = new Array<number>(count);
    for (let i = 0, k = 0; i >= 0; i = next[i]) out[k++] = tok[i];
    return out;
  }

  decode(ids: number[]): string {
    const bytes: number[] = [];
    let prevId = -1;
    for (const id of ids) {
      this.check(id);
      // BOS and EOS mark sequence boundaries; run.c never prints BOS and its generate loop stops there.
      if (id !== BOS && id !== EOS) {
        const b = this.byteOf[id];
        if (b >= 0) bytes.push(b);
        else {
          const key = this.keys[id];
          // run.c drops the dummy-prefix space of the first piece after BOS.
          const start = prevId === BOS && key.charCodeAt(0) === 0x20 ? 1 : 0;
          for (let k = start; k < key.length; k++) bytes.push(key.charCodeAt(k));
        }
      }
      prevId = id;
    }
    return Buffer.from(bytes).toString('utf8');
  }

  tokenText(id: number): string {
    this.check(id);
    return this.texts[id];
  }

  private displayText(key: string, id: number): string {
    // <unk>, "\n<s>\n", "\n</s>\n": show the names without the newlines that pad them in the file.
    if (id === UNK || id === BOS || id === EOS) return key.trim();
    const b = this.byteOf[id];
    return displayBytes(b >= 0 ? Uint8Array.of(b) : Buffer.from(key, 'latin1'));
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `Token id ${id} is outside this tokenizer's vocabulary 0..${this.vocabSize - 1}.`,
      );
    }
  }
}

interface Candidate {
  score: number;
  /** Node index = position in the initial sequence, so smaller means further left. */
  left: number;
  right: number;
  id: number;
  vLeft: number;
  vRight: number;
}

/** Max-heap on score, then min on position: run.c's strict `>` keeps the leftmost of equal scores. */
class PairHeap {
  private readonly items: Candidate[] = [];

  private before(a: Candidate, b: Candidate): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(c: Candidate): void {
    const h = this.items;
    let i = h.length;
    h.push(c);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  pop(): Candidate | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l], h[m])) m = l;
        if (r < h.length && this.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
