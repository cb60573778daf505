/**
 * Writes a dictionary as a SAELens folder (new cfg layout: architecture at top level, metadata
 * nested) so that any SAELens-compatible tool, and openSae, reads it back. float32 weights
 * round-trip bit for bit.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AtlasError } from '../../errors.js';
import { writeSafetensors, TensorToWrite } from '../tensors/safetensors.js';
import {
  SAELENS_CFG,
  SAELENS_SPARSITY,
  SAELENS_WEIGHTS,
  saelensArchitectureName,
  saelensTensorShapes,
} from './readers/saelens.js';
import { SaeConfig, SaeParams } from './types.js';

export interface WriteSaelensOptions {
  /** Stored element type; float32 by default (float16/bfloat16 round values). */
  dtype?: 'float32' | 'float16' | 'bfloat16';
  /** log10 feature firing frequency [dSae], written to sparsity.safetensors. */
  logSparsity?: Float32Array | null;
}

const ST_DTYPE = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;

export function writeSaelens(dir: string, cfg: SaeConfig, params: SaeParams, opts: WriteSaelensOptions = {}): void {
  const dtype = opts.dtype ?? 'float32';
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, shape] of Object.entries(saelensTensorShapes(cfg))) {
    const data = params[name as keyof SaeParams];
    const want = shape.reduce((a, b) => a * b, 1);
    if (!data || data.length !== want) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `Cannot export: parameter "${name}" should hold [${shape.join(', ')}] = ${want} values but has ` +
          `${data?.length ?? 'none'}.`,
      );
    }
    tensors[name] = { dtype: ST_DTYPE[dtype], shape, data };
  }
  const out: Record<string, unknown> = {
    architecture: saelensArchitectureName(cfg),
    d_in: cfg.dIn,
    d_sae: cfg.dSae,
    dtype,
    device: 'cpu',
    apply_b_dec_to_input: cfg.applyBDecToInput,
    normalize_activations: cfg.normalization.kind,
    reshape_activations: 'none',
    metadata: {
      model_name: cfg.modelName,
      hook_name: cfg.hookName,
      ...(cfg.prependBos === null ? {} : { prepend_bos: cfg.prependBos }),
      exported_by: 'feature-atlas',
      source_format: cfg.sourceFormat,
    },
  };
  if (cfg.transcoder) Object.assign(out, { d_out: cfg.dIn, hook_name_out: cfg.transcoder.hookNameOut });
  if (cfg.architecture === 'topk') {
    out.k = cfg.k;
    out.rescale_acts_by_decoder_norm = false;
  }
  if (cfg.normalization.scalingFactor !== null) out.norm_scaling_factor = cfg.normalization.scalingFactor;
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, SAELENS_WEIGHTS), tensors);
  if (opts.logSparsity)
    writeSafetensors(join(dir, SAELENS_SPARSITY), { sparsity: { shape: [cfg.dSae], data: opts.logSparsity } });
  writeFileSync(join(dir, SAELENS_CFG), JSON.stringify(out, null, 2) + '\n');
}
