/**
 * EleutherAI sparsify folders: cfg.json + sae.safetensors with `encoder.weight` [d_sae, d_in],
 * `encoder.bias`, `W_dec` [d_sae, d_in], `b_dec`. Encode is topk(relu(encoder(x - b_dec))), which
 * is the SAELens topk architecture with W_enc = encoder.weight transposed. A transcoder (`transcode:
 * true`) skips the b_dec subtraction, and with `skip_connection` adds x W_skip^T (W_skip [d_in, d_in]).
 */
import { basename, join } from 'node:path';
import { AtlasError } from '../../../errors.js';
import { SaeConfig, SaeSource } from '../types.js';
import { DTYPE_NAMES, positiveInt, readJson, safetensorsReader } from './common.js';
import { mappedSource } from './mapped.js';

export const SPARSIFY_WEIGHTS = 'sae.safetensors';

export function openSparsify(dir: string): SaeSource {
  const cfgPath = join(dir, 'cfg.json');
  const raw = readJson(cfgPath);
  const weights = safetensorsReader(join(dir, SPARSIFY_WEIGHTS));
  try {
    const activation = raw.activation ?? 'topk';
    if (activation !== 'topk') {
      throw new AtlasError(
        'UNSUPPORTED',
        `${cfgPath}: activation ${JSON.stringify(activation)} is not supported; sparsify dictionaries must use topk.`,
      );
    }
    const transcode = raw.transcode === true;
    const skip = raw.skip_connection === true;
    if (skip && !transcode) {
      throw new AtlasError(
        'UNSUPPORTED',
        `${cfgPath}: skip connections (W_skip) are supported on transcoders (transcode = true) only.`,
      );
    }
    if (!weights.has('encoder.weight'))
      throw new AtlasError(
        'BAD_FILE',
        `${weights.path} is missing tensor "encoder.weight" (expected shape [d_sae, d_in]).`,
      );
    const encShape = weights.shape('encoder.weight');
    if (encShape.length !== 2) {
      throw new AtlasError(
        'BAD_FILE',
        `${weights.path}: tensor "encoder.weight" has shape [${encShape.join(', ')}] but a 2-D [d_sae, d_in] tensor ` +
          `was expected.`,
      );
    }
    const dIn = raw.d_in !== undefined ? positiveInt(raw.d_in, 'd_in', cfgPath) : encShape[1];
    const dSae = encShape[0];
    const declared =
      typeof raw.num_latents === 'number' && raw.num_latents > 0
        ? raw.num_latents
        : typeof raw.expansion_factor === 'number' && raw.expansion_factor > 0
          ? raw.expansion_factor * dIn
          : dSae;
    if (declared !== dSae) {
      throw new AtlasError(
        'BAD_FILE',
        `${cfgPath} declares ${declared} latents but "encoder.weight" has shape [${encShape.join(', ')}].`,
      );
    }
    const k = positiveInt(raw.k, 'k', cfgPath);
    if (k > dSae) throw new AtlasError('BAD_FILE', `${cfgPath}: k = ${k} exceeds the ${dSae} latents.`);
    const config: SaeConfig = {
      architecture: 'topk',
      dIn,
      dSae,
      k,
      // sparsify names hook points by Hugging Face module path (kept in extra.module), not by TransformerLens hook
      // name.
      hookName: null,
      modelName: null,
      prependBos: null,
      applyBDecToInput: !transcode,
      // sparsify names the output by module too; `atlas import --hook-out` (or the MLP default) names it.
      ...(transcode && { transcoder: { hookNameOut: null, skip } }),
      normalization: { kind: 'none', scalingFactor: null },
      sourceFormat: 'sparsify',
      dtype: DTYPE_NAMES[weights.dtype('W_dec')] ?? weights.dtype('W_dec'),
      extra: { ...raw, module: basename(dir) },
    };
    return mappedSource(weights, config, {
      W_enc: { tensor: 'encoder.weight', layout: 'T' },
      b_enc: { tensor: 'encoder.bias', layout: 'same' },
      W_dec: { tensor: 'W_dec', layout: 'same' },
      b_dec: { tensor: 'b_dec', layout: 'same' },
      ...(skip && { W_skip: { tensor: 'W_skip', layout: 'same' as const } }),
    });
  } catch (e) {
    weights.close();
    throw e;
  }
}
