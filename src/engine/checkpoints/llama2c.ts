/**
 * Reader for llama2.c's legacy (version 0) `.bin` checkpoints: seven int32 header fields, then
 * float32 arrays in a fixed order (see ../shared/models/stories260K/README.md). Matrices are stored
 * [out, in]; this reader hands them out transposed to the [in, out] layout of TransformerWeights.
 * Tensors are read from disk on demand so a large checkpoint is never held whole in memory.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { AtlasError } from '../../errors.js';
import type { TransformerConfig, TransformerWeights } from '../model/types.js';

const HEADER_BYTES = 7 * 4;
/** llama2.c's export.py writes "ak42" as the first int32 of its version 1 and 2 formats. */
const LLAMA2C_MAGIC = 0x616b3432;

export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  /** A negative vocab_size in the header means the classifier is stored after the RoPE tables. */
  sharedClassifier: boolean;
}

/** Where one source array lives: float offset into the file's data section and its [rows, cols]. */
interface Region {
  offset: number;
  rows: number;
  cols: number;
}

function readHeader(path: string, fd: number, size: number): Llama2cHeader {
  if (size < HEADER_BYTES) {
    throw new AtlasError(
      'BAD_FILE',
      `${path} is truncated: ${size} bytes, too short for the ${HEADER_BYTES}-byte llama2.c header.`,
    );
  }
  const buf = Buffer.alloc(HEADER_BYTES);
  readSync(fd, buf, 0, HEADER_BYTES, 0);
  const f = Array.from({ length: 7 }, (_, i) => buf.readInt32LE(i * 4));
  if (f[0] === LLAMA2C_MAGIC) {
    throw new AtlasError(
      'UNSUPPORTED',
      `${path} is a llama2.c version 1/2 export ("ak42" magic); only the legacy version 0 format is supported. ` +
        `Re-export it with export.py --version 0.`,
    );
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = f;
  const h: Llama2cHeader = {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: Math.abs(vocabRaw),
    seqLen,
    sharedClassifier: vocabRaw > 0,
  };
  const fields =
    `dim=${dim} hidden_dim=${hiddenDim} n_layers=${nLayers} n_heads=${nHeads} n_kv_heads=${nKvHeads} ` +
    `vocab_size=${vocabRaw} seq_len=${seqLen}`;
  const sane =
    [dim, hiddenDim, nLayers, nHeads, nKvHeads, h.vocabSize, seqLen].every((v) => v > 0 && v <= 1 << 24) &&
    dim % nHeads === 0 &&
    nHeads % nKvHeads === 0 &&
    (dim / nHeads) % 2 === 0;
  if (!sane) {
    throw new AtlasError(
      'BAD_FILE',
      `${path} does not look like a llama2.c checkpoint: header ${fields} is inconsistent (need positive sizes, dim ` +
        `divisible by n_heads, n_heads by n_kv_heads, an even head size).`,
    );
  }
  return h;
}

function layout(h: Llama2cHeader): { regions: Map<string, Region>; totalFloats: number } {
  const headSize = h.dim / h.nHeads;
  const kvDim = (h.dim * h.nKvHeads) / h.nHeads;
  const regions = new Map<string, Region>();
  let offset = 0;
  const add = (name: string, rows: number, cols: number): void => {
    regions.set(name, { offset, rows, cols });
    offset += rows * cols;
  };
  // Per-layer arrays are stored contiguously for all layers; record each layer's slice.
  const perLayer = (name: string, rows: number, cols: number): void => {
    for (let l = 0; l < h.nLayers; l++) add(`${name}.${l}`, rows, cols);
  };
  add('token_embedding', h.vocabSize, h.dim);
  perLayer('rms_att', 1, h.dim);
  perLayer('wq', h.dim, h.dim);
  perLayer('wk', kvDim, h.dim);
  perLayer('wv', kvDim, h.dim);
  perLayer('wo', h.dim, h.dim);
  perLayer('rms_ffn', 1, h.dim);
  perLayer('w1', h.hiddenDim, h.dim);
  perLayer('w2', h.dim, h.hiddenDim);
  perLayer('w3', h.hiddenDim, h.dim);
  add('rms_final', 1, h.dim);
  add('freq_cis_real', h.seqLen, headSize / 2);
  add('freq_cis_imag', h.seqLen, headSize / 2);
  if (!h.sharedClassifier) add('wcls', h.vocabSize, h.dim);
  return { regions, totalFloats: offset };
}

/** Canonical name → (source array, transpose?) */
function canonicalNames(h: Llama2cHeader): Map<string, { source: string; transpose: boolean }> {
  const m = new Map<string, { source: string; transpose: boolean }>();
  m.set('embed.W_E', { source: 'token_embedding', transpose: false });
  for (let l = 0; l < h.nLayers; l++) {
    const b = `blocks.${l}`;
    m.set(`${b}.ln1.w`, { source: `rms_att.${l}`, transpose: false });
    m.set(`${b}.attn.W_Q`, { source: `wq.${l}`, transpose: true });
    m.set(`${b}.attn.W_K`, { source: `wk.${l}`, transpose: true });
    m.set(`${b}.attn.W_V`, { source: `wv.${l}`, transpose: true });
    m.set(`${b}.attn.W_O`, { source: `wo.${l}`, transpose: true });
    m.set(`${b}.ln2.w`, { source: `rms_ffn.${l}`, transpose: false });
    // TransformerLens: W_gate goes through the activation (llama2.c w1), W_in is the linear "up" (w3).
    m.set(`${b}.mlp.W_gate`, { source: `w1.${l}`, transpose: true });
    m.set(`${b}.mlp.W_in`, { source: `w3.${l}`, transpose: true });
    m.set(`${b}.mlp.W_out`, { source: `w2.${l}`, transpose: true });
  }
  m.set('ln_final.w', { source: 'rms_final', transpose: false });
  m.set('unembed.W_U', { source: h.sharedClassifier ? 'token_embedding' : 'wcls', transpose: true });
  return m;
}

function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c];
  }
  return out;
}

export interface Llama2cCheckpoint {
  header: Llama2cHeader;
  weights: TransformerWeights;
}

/** Opens a llama2.c checkpoint, validating header and file size; tensors are read lazily. */
export function openLlama2c(path: string): Llama2cCheckpoint {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new AtlasError('BAD_FILE', `Cannot open llama2.c checkpoint ${path}: ${(e as Error).message}`);
  }
  let header: Llama2cHeader;
  let regions: Map<string, Region>;
  try {
    const size = fstatSync(fd).size;
    header = readHeader(path, fd, size);
    const lay = layout(header);
    regions = lay.regions;
    const expected = HEADER_BYTES + lay.totalFloats * 4;
    if (size !== expected) {
      const what = size < expected ? 'is truncated' : 'has trailing bytes';
      throw new AtlasError(
        'BAD_FILE',
        `${path} ${what}: the header (dim=${header.dim}, n_layers=${header.nLayers}, vocab=${header.vocabSize}, ` +
          `seq_len=${header.seqLen}) implies ${expected} bytes but the file has ${size}.`,
      );
    }
  } finally {
    closeSync(fd);
  }

  const config: TransformerConfig = {
    architecture: 'llama',
    dModel: header.dim,
    nLayers: header.nLayers,
    nHeads: header.nHeads,
    nKvHeads: header.nKvHeads,
    dHead: header.dim / header.nHeads,
    dMlp: header.hiddenDim,
    vocabSize: header.vocabSize,
    contextLength: header.seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: 'interleaved',
    activation: 'silu',
    tiedEmbeddings: header.sharedClassifier,
  };
  const names = canonicalNames(header);

  const readRegion = (r: Region): Float32Array => {
    const out = new Float32Array(r.rows * r.cols);
    const bytes = new Uint8Array(out.buffer);
    const f = openSync(path, 'r');
    try {
      let done = 0;
      while (done < bytes.length) {
        const n = readSync(f, bytes, done, bytes.length - done, HEADER_BYTES + r.offset * 4 + done);
        if (n === 0)
          throw new AtlasError(
            'BAD_FILE',
            `${path} changed while being read (short read at byte ${HEADER_BYTES + r.offset * 4 + done}).`,
          );
        done += n;
      }
    } finally {
      closeSync(f);
    }
    return out;
  };

  const weights: TransformerWeights = {
    config,
    has: (name) => names.has(name),
    tensor(name) {
      const entry = names.get(name);
      if (!entry) throw new AtlasError('BAD_FILE', `llama2.c checkpoint ${path} has no tensor "${name}".`);
      const region = regions.get(entry.source)!;
      const data = readRegion(region);
      return entry.transpose ? transpose(data, region.rows, region.cols) : data;
    },
  };
  return { header, weights };
}
