/**
 * Writers for small random SAE dictionaries in every supported format, architecture and dtype,
 * optionally corrupted, for reader, encoder and import tests. Each returns the configuration and
 * parameters a correct reader must produce (values rounded to the stored dtype).
 */
import { mkdtempSync, rmSync, truncateSync, statSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { fromFloat32, toFloat32 } from '../../src/engine/tensors/dtype.js';
import { writeSafetensors, TensorToWrite } from '../../src/engine/tensors/safetensors.js';
import type { NormalizationKind, SaeArchitecture, SaeConfig, SaeParams } from '../../src/engine/sae/types.js';
import { normal, rng } from './rng.js';
import type { LlamaScopeHyper } from '../reference/sae.js';

export type SaeFixtureFormat = 'saelens' | 'saelens-old' | 'sparsify' | 'gemmascope';
export type SaeFixtureDtype = 'float32' | 'float16' | 'bfloat16';

export type SaeCorruption =
  | { kind: 'missing-tensor'; tensor: string }
  | { kind: 'wrong-shape'; tensor: string }
  /** Puts `value` (NaN by default, or ±Infinity) at flat `index` (default 3) of a tensor. */
  | { kind: 'non-finite'; tensor: string; index?: number; value?: number }
  /** Cuts `bytes` (default 100) off the end of the weights file. */
  | { kind: 'truncate'; bytes?: number }
  | { kind: 'unknown-architecture'; name: string };

export interface SaeFixtureOptions {
  format: SaeFixtureFormat;
  /** sparsify is always topk and Gemma Scope always jumprelu; default standard for SAELens. */
  architecture?: SaeArchitecture;
  dIn?: number;
  dSae?: number;
  k?: number;
  dtype?: SaeFixtureDtype;
  normalization?: NormalizationKind;
  scalingFactor?: number | null;
  applyBDecToInput?: boolean;
  seed?: number;
  /** SAELens only: also write sparsity.safetensors. */
  sparsity?: boolean;
  /** Gemma Scope only: deflate the npz members (np.savez_compressed). */
  compressed?: boolean;
  hookName?: string | null;
  modelName?: string | null;
  /** SAELens only: metadata.prepend_bos (default true, as TransformerLens runs GPT-2); null leaves it out. */
  prependBos?: boolean | null;
  /**
   * SAELens (architecture standard → transcoder / skip_transcoder, jumprelu → jumprelu_transcoder) and
   * sparsify (transcode: true, skip_connection): a transcoder reconstructing `hookNameOut` (SAELens only).
   */
  transcoder?: { hookNameOut: string | null; skip: boolean };
  corrupt?: SaeCorruption;
}

export interface SaeFixture {
  /** The folder (SAELens, sparsify) or params.npz file (Gemma Scope) to give openSae. */
  path: string;
  /** The file holding the weights (the one corruptions touch). */
  weightsPath: string;
  config: SaeConfig;
  params: SaeParams;
  logSparsity: Float32Array | null;
}

const ST_DTYPE = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;

/** A fresh temp folder and a function that removes it. */
export function tempDir(prefix = 'atlas-sae-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function randn(rand: () => number, count: number, scale: number, mean = 0): Float32Array {
  return Float32Array.from({ length: count }, () => mean + scale * normal(rand));
}

/** Random parameters with a useful share of active features for each architecture. */
export function randomSaeParams(architecture: SaeArchitecture, dIn: number, dSae: number, seed = 1): SaeParams {
  const rand = rng(seed);
  const p: SaeParams = {
    W_enc: randn(rand, dIn * dSae, 1 / Math.sqrt(dIn)),
    W_dec: randn(rand, dSae * dIn, 1 / Math.sqrt(dIn)),
    b_dec: randn(rand, dIn, 0.1),
  };
  if (architecture === 'gated') {
    p.b_gate = randn(rand, dSae, 0.3, -0.1);
    p.b_mag = randn(rand, dSae, 0.3);
    p.r_mag = randn(rand, dSae, 0.2);
  } else {
    p.b_enc = randn(rand, dSae, 0.2, -0.1);
  }
  if (architecture === 'jumprelu') p.threshold = Float32Array.from({ length: dSae }, () => 0.1 + 0.6 * rand());
  return p;
}

/** Input vectors around a nonzero mean, as residual-stream activations are. */
export function randomVectors(n: number, dIn: number, seed = 7, scale = 2): Float32Array {
  const rand = rng(seed);
  const offset = randn(rand, dIn, 0.5);
  return Float32Array.from({ length: n * dIn }, (_, i) => offset[i % dIn] + scale * normal(rand));
}

function roundTo(v: Float32Array, dtype: SaeFixtureDtype): Float32Array {
  return dtype === 'float32' ? v.slice() : toFloat32(fromFloat32(v, ST_DTYPE[dtype]), ST_DTYPE[dtype]);
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

interface RawTensor {
  shape: number[];
  data: Float32Array;
}

function applyCorruption(tensors: Record<string, RawTensor>, c: SaeCorruption | undefined): void {
  if (!c) return;
  if (c.kind === 'missing-tensor') delete tensors[c.tensor];
  if (c.kind === 'wrong-shape') {
    const t = tensors[c.tensor];
    const shape = [t.shape[0] + 1, ...t.shape.slice(1)];
    tensors[c.tensor] = { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
  }
  if (c.kind === 'non-finite') {
    const t = tensors[c.tensor];
    t.data = t.data.slice();
    t.data[c.index ?? 3] = c.value ?? NaN;
  }
}

function truncateFile(path: string, c: SaeCorruption | undefined): void {
  if (c?.kind === 'truncate') truncateSync(path, statSync(path).size - (c.bytes ?? 100));
}

export function writeSaeFixture(dir: string, opts: SaeFixtureOptions): SaeFixture {
  const fmt = opts.format;
  const architecture: SaeArchitecture =
    fmt === 'sparsify' ? 'topk' : fmt === 'gemmascope' ? 'jumprelu' : (opts.architecture ?? 'standard');
  const dIn = opts.dIn ?? 32;
  const dSae = opts.dSae ?? 128;
  const dtype = opts.dtype ?? 'float32';
  const k = architecture === 'topk' ? (opts.k ?? 8) : null;
  const seed = opts.seed ?? 1;
  const normalization = fmt === 'sparsify' || fmt === 'gemmascope' ? 'none' : (opts.normalization ?? 'none');
  const scalingFactor = normalization === 'expected_average_only_in' ? (opts.scalingFactor ?? 0.5) : null;
  const tc = opts.transcoder;
  const applyBDecToInput =
    fmt === 'gemmascope' || tc ? false : fmt === 'sparsify' ? true : (opts.applyBDecToInput ?? true);
  const hookName =
    opts.hookName === undefined
      ? fmt === 'saelens' || fmt === 'saelens-old'
        ? 'blocks.2.hook_resid_pre'
        : null
      : opts.hookName;
  const prependBos =
    fmt === 'saelens' || fmt === 'saelens-old' ? (opts.prependBos === undefined ? true : opts.prependBos) : null;
  const modelName =
    opts.modelName === undefined ? (fmt === 'saelens' || fmt === 'saelens-old' ? 'stories260K' : null) : opts.modelName;

  const exact = randomSaeParams(architecture, dIn, dSae, seed);
  if (tc?.skip) exact.W_skip = randn(rng(seed + 99), dIn * dIn, 0.3 / Math.sqrt(dIn));
  const params: SaeParams = {} as SaeParams;
  for (const [name, v] of Object.entries(exact))
    (params as unknown as Record<string, Float32Array>)[name] = roundTo(v, dtype);
  const logSparsity =
    fmt === 'saelens' && opts.sparsity
      ? Float32Array.from({ length: dSae }, (_, j) => (j === 0 ? -Infinity : -1 - 4 * rng(seed + j)()))
      : null;

  mkdirSync(dir, { recursive: true });
  let cfgJson: Record<string, unknown> | null = null;
  let tensors: Record<string, RawTensor>;
  let weightsPath: string;
  const baseShapes: Record<string, number[]> = {
    W_enc: [dIn, dSae],
    W_dec: [dSae, dIn],
    b_dec: [dIn],
    b_enc: [dSae],
    threshold: [dSae],
    b_gate: [dSae],
    b_mag: [dSae],
    r_mag: [dSae],
    W_skip: [dIn, dIn],
  };
  const named = (): Record<string, RawTensor> =>
    Object.fromEntries(Object.entries(params).map(([n, data]) => [n, { shape: baseShapes[n], data }]));

  if (fmt === 'saelens' || fmt === 'saelens-old') {
    tensors = named();
    weightsPath = join(dir, 'sae_weights.safetensors');
    const archName = opts.corrupt?.kind === 'unknown-architecture' ? opts.corrupt.name : architecture;
    if (fmt === 'saelens') {
      cfgJson = {
        architecture: archName,
        d_in: dIn,
        d_sae: dSae,
        dtype,
        device: 'cpu',
        apply_b_dec_to_input: applyBDecToInput,
        normalize_activations: normalization,
        reshape_activations: 'none',
        metadata: { model_name: modelName, hook_name: hookName, context_size: 128, sae_lens_version: '6.0.0' },
      };
      if (prependBos !== null) (cfgJson.metadata as Record<string, unknown>).prepend_bos = prependBos;
      if (k !== null) Object.assign(cfgJson, { k, rescale_acts_by_decoder_norm: false });
      if (tc) {
        const name = architecture === 'jumprelu' ? 'jumprelu_transcoder' : tc.skip ? 'skip_transcoder' : 'transcoder';
        Object.assign(cfgJson, { architecture: name, d_out: dIn, hook_name_out: tc.hookNameOut });
      }
    } else {
      // Pre-v6 layout: hook_point and model_name at top level, activation named separately, boolean normalization.
      cfgJson = {
        model_name: modelName,
        hook_point: hookName,
        hook_point_layer: 2,
        d_in: dIn,
        d_sae: dSae,
        dtype,
        device: 'cpu',
        apply_b_dec_to_input: applyBDecToInput,
        context_size: 128,
        sae_lens_training_version: '3.12.0',
        ...(prependBos === null ? {} : { prepend_bos: prependBos }),
        activation_fn_str: architecture === 'topk' ? 'topk' : 'relu',
        normalize_activations:
          normalization === 'none' ? false : normalization === 'expected_average_only_in' ? true : normalization,
      };
      if (k !== null) cfgJson.activation_fn_kwargs = { k };
      if (architecture === 'jumprelu' || architecture === 'gated' || archName !== architecture)
        cfgJson.architecture = archName;
    }
    if (scalingFactor !== null) cfgJson.norm_scaling_factor = scalingFactor;
  } else if (fmt === 'sparsify') {
    tensors = {
      'encoder.weight': { shape: [dSae, dIn], data: transpose(params.W_enc, dIn, dSae) },
      'encoder.bias': { shape: [dSae], data: params.b_enc! },
      W_dec: { shape: [dSae, dIn], data: params.W_dec },
      b_dec: { shape: [dIn], data: params.b_dec },
      ...(params.W_skip && { W_skip: { shape: [dIn, dIn], data: params.W_skip } }),
    };
    weightsPath = join(dir, 'sae.safetensors');
    cfgJson = {
      activation: opts.corrupt?.kind === 'unknown-architecture' ? opts.corrupt.name : 'topk',
      expansion_factor: dSae / dIn,
      normalize_decoder: true,
      num_latents: 0,
      k,
      multi_topk: false,
      skip_connection: tc?.skip ?? false,
      transcode: tc !== undefined,
      d_in: dIn,
    };
  } else {
    tensors = named();
    weightsPath = join(dir, 'params.npz');
  }

  applyCorruption(tensors, opts.corrupt);
  if (fmt === 'gemmascope') {
    writeNpz(
      weightsPath,
      Object.fromEntries(
        Object.entries(tensors).map(([n, t]) => [n, { ...t, descr: dtype === 'float16' ? '<f2' : '<f4' }]),
      ),
      { compressed: opts.compressed },
    );
  } else {
    writeSafetensors(
      weightsPath,
      Object.fromEntries(
        Object.entries(tensors).map(([n, t]): [string, TensorToWrite] => [n, { dtype: ST_DTYPE[dtype], ...t }]),
      ),
    );
    writeFileSync(join(dir, 'cfg.json'), JSON.stringify(cfgJson, null, 2));
  }
  if (logSparsity)
    writeSafetensors(join(dir, 'sparsity.safetensors'), { sparsity: { shape: [dSae], data: logSparsity } });
  truncateFile(weightsPath, opts.corrupt);

  const config: SaeConfig = {
    architecture,
    dIn,
    dSae,
    k,
    hookName,
    modelName,
    prependBos,
    applyBDecToInput,
    ...(tc && { transcoder: { hookNameOut: fmt === 'sparsify' ? null : tc.hookNameOut, skip: tc.skip } }),
    normalization: { kind: normalization, scalingFactor },
    sourceFormat: fmt === 'saelens-old' ? 'saelens' : fmt,
    dtype: fmt === 'gemmascope' && dtype === 'bfloat16' ? 'float32' : dtype,
    extra: cfgJson ?? {},
  };
  return { path: fmt === 'gemmascope' ? weightsPath : dir, weightsPath, config, params, logSparsity };
}

export interface NpyArray {
  shape: number[];
  data: Float32Array;
  /** '<f4' by default; any other descr is written with float32 bytes (for unsupported-dtype tests). */
  descr?: string;
  fortranOrder?: boolean;
}

/** An npy file's bytes (format 1.0), as numpy.save writes it. */
export function npyBytes(a: NpyArray): Buffer {
  const descr = a.descr ?? '<f4';
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${a.fortranOrder ? 'True' : 'False'}, 'shape': ${shape}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body =
    descr === '<f2'
      ? Buffer.from(fromFloat32(a.data, 'F16'))
      : descr === '<f8'
        ? Buffer.from(Float64Array.from(a.data).buffer)
        : Buffer.from(fromFloat32(a.data, 'F32'));
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), body]);
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(b: Buffer): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A zip of `<name>.npy` members, stored (numpy.savez) or deflated (numpy.savez_compressed).
 * `zip64` writes sizes, offsets and counts in zip64 records, as archives over 4 GiB must.
 */
export function writeNpz(
  path: string,
  arrays: Record<string, NpyArray>,
  opts: { compressed?: boolean; zip64?: boolean } = {},
): void {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, a] of Object.entries(arrays)) {
    const raw = npyBytes(a);
    const data = opts.compressed ? deflateRawSync(raw) : raw;
    const fname = Buffer.from(`${name}.npy`, 'utf8');
    const crc = crc32(raw);
    const method = opts.compressed ? 8 : 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(fname.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(45, 4);
    cd.writeUInt16LE(45, 6);
    cd.writeUInt16LE(method, 10);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(opts.zip64 ? 0xffffffff : data.length, 20);
    cd.writeUInt32LE(opts.zip64 ? 0xffffffff : raw.length, 24);
    cd.writeUInt16LE(fname.length, 28);
    cd.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 42);
    let extra = Buffer.alloc(0);
    if (opts.zip64) {
      extra = Buffer.alloc(28);
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(raw.length), 4);
      extra.writeBigUInt64LE(BigInt(data.length), 12);
      extra.writeBigUInt64LE(BigInt(offset), 20);
      cd.writeUInt16LE(extra.length, 30);
    }
    central.push(cd, fname, extra);
    parts.push(local, fname, data);
    offset += local.length + fname.length + data.length;
  }
  const cdBuf = Buffer.concat(central);
  const count = Object.keys(arrays).length;
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : count, 8);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : count, 10);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cdBuf.length, 12);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 16);
  const z64: Buffer[] = [];
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(count), 24);
    rec.writeBigUInt64LE(BigInt(count), 32);
    rec.writeBigUInt64LE(BigInt(cdBuf.length), 40);
    rec.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(offset + cdBuf.length), 8);
    loc.writeUInt32LE(1, 16);
    z64.push(rec, loc);
  }
  writeFileSync(path, Buffer.concat([...parts, cdBuf, ...z64, eocd]));
}

/** A Llama Scope folder as the release lays it out: hyperparams.json + checkpoints/final.safetensors. */
export function writeLlamaScopeFixture(dir: string, hp: LlamaScopeHyper & Record<string, unknown>, seed: number) {
  const rand = rng(seed);
  const d = hp.d_model;
  const m = hp.d_sae;
  const t = {
    encW: randn(rand, m * d, 0.35),
    encB: randn(rand, m, 0.2, -0.1),
    decW: randn(rand, d * m, 0.3),
    decB: randn(rand, d, 0.5),
  };
  mkdirSync(join(dir, 'checkpoints'), { recursive: true });
  writeFileSync(join(dir, 'hyperparams.json'), JSON.stringify(hp));
  writeSafetensors(join(dir, 'checkpoints', 'final.safetensors'), {
    'encoder.weight': { shape: [m, d], data: t.encW },
    'encoder.bias': { shape: [m], data: t.encB },
    'decoder.weight': { shape: [d, m], data: t.decW },
    'decoder.bias': { shape: [d], data: t.decB },
  });
  return t;
}
