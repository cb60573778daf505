/**
 * OpenAI `sparse_autoencoder` (the GPT-2 small dictionaries, v1-v5): a torch.save'd state dict of
 * sparse_autoencoder.model.Autoencoder:
 *   pre_bias [d], latent_bias [n], encoder.weight [n, d], decoder.weight [d, n] (nn.Linear layouts),
 *   activation "TopK" | "ReLU", activation_state_dict {k, postact_fn} for TopK,
 *   buffers stats_last_nonzero, latents_activation_frequency [n], latents_mean_square.
 * Published model: latents = act((x' - pre_bias) encoder.weightᵀ + latent_bias),
 * recons = latents decoder.weightᵀ + pre_bias. A TopK dictionary also normalizes (the file says so
 * only through its activation): x' = (x - μ) / (σ + 1e-5) with σ the unbiased std of x - μ, and
 * recons is mapped back as recons·σ + μ. That is the SAELens topk architecture with layer_norm
 * normalization, W_enc = encoder.weightᵀ, b_enc = latent_bias, W_dec = decoder.weightᵀ,
 * b_dec = pre_bias; ReLU dictionaries are SAELens standard without normalization.
 * latents_activation_frequency is the fraction of training tokens each latent fired on.
 */
import { AtlasError } from '../../../errors.js';
import { TorchStateDict } from '../../tensors/torch.js';
import { SaeConfig, SaeSource } from '../types.js';
import { DTYPE_NAMES, positiveInt, torchReader } from './common.js';
import { mappedSource } from './mapped.js';

/** A state dict is OpenAI's when it has these entries. */
export function isOpenAiStateDict(sd: TorchStateDict): boolean {
  return sd.has('pre_bias') && sd.has('latent_bias') && sd.has('encoder.weight');
}

/** Release paths look like .../resid_post_mlp_v5_32k/autoencoders/8.pt. */
function hookFromPath(path: string): string | null {
  const m =
    /(mlp_post_act|resid_delta_attn|resid_delta_mlp|resid_post_attn|resid_post_mlp)[^/]*\/autoencoders\/(\d+)\.pt$/.exec(
      path.replace(/\\/g, '/'),
    );
  if (!m) return null;
  const hook = {
    mlp_post_act: 'mlp.hook_post',
    resid_delta_attn: 'hook_attn_out',
    resid_delta_mlp: 'hook_mlp_out',
    resid_post_attn: 'hook_resid_mid',
    resid_post_mlp: 'hook_resid_post',
  }[m[1]]!;
  return `blocks.${m[2]}.${hook}`;
}

export function openOpenAi(sd: TorchStateDict): SaeSource {
  const path = sd.path;
  const r = torchReader(sd);
  const enc = sd.info('encoder.weight');
  if (enc.shape.length !== 2)
    throw new AtlasError(
      'BAD_FILE',
      `${path}: tensor "encoder.weight" has shape [${enc.shape.join(', ')}] but [n_latents, d_model] was expected.`,
    );
  const [dSae, dIn] = enc.shape;
  // A tied autoencoder (TiedTranspose) keeps only the encoder: its decoder weight is encoder.weightᵀ.
  const tied = !sd.has('decoder.weight') && sd.has('decoder.linear.weight');
  const activation = sd.values.get('activation') ?? 'ReLU';
  let k: number | null = null;
  if (activation === 'TopK') {
    const postact = sd.values.get('activation_state_dict.postact_fn') ?? 'ReLU';
    if (postact !== 'ReLU') {
      throw new AtlasError(
        'UNSUPPORTED',
        `${path}: TopK with postact_fn ${JSON.stringify(postact)} is not supported (only ReLU, whose codes are ` +
          `never negative).`,
      );
    }
    k = positiveInt(sd.values.get('activation_state_dict.k'), 'activation_state_dict.k', path);
    if (k > dSae) throw new AtlasError('BAD_FILE', `${path}: k = ${k} exceeds the ${dSae} latents.`);
  } else if (activation !== 'ReLU') {
    throw new AtlasError(
      'UNSUPPORTED',
      `${path}: activation ${JSON.stringify(activation)} is not supported; OpenAI dictionaries use TopK or ReLU.`,
    );
  }

  const config: SaeConfig = {
    architecture: k === null ? 'standard' : 'topk',
    dIn,
    dSae,
    k,
    hookName: hookFromPath(path),
    modelName: null,
    prependBos: null,
    applyBDecToInput: true,
    normalization: { kind: k === null ? 'none' : 'layer_norm', scalingFactor: null },
    sourceFormat: 'openai',
    dtype: DTYPE_NAMES[enc.dtype] ?? enc.dtype,
    extra: { activation, k, tied, postact_fn: k === null ? null : 'ReLU' },
  };
  return mappedSource(
    r,
    config,
    {
      W_enc: { tensor: 'encoder.weight', layout: 'T' },
      b_enc: { tensor: 'latent_bias', layout: 'same' },
      // A tied decoder's weight is encoder.weightᵀ, so W_dec is encoder.weight as stored.
      W_dec: tied ? { tensor: 'encoder.weight', layout: 'same' } : { tensor: 'decoder.weight', layout: 'T' },
      b_dec: { tensor: 'pre_bias', layout: 'same' },
    },
    {
      density: () => {
        if (!sd.has('latents_activation_frequency')) return null;
        const f = r.readF32('latents_activation_frequency', [dSae]);
        // The buffer starts as all ones and stays so in a file whose training never updated it.
        if (f.every((v) => v === 1)) return null;
        for (let i = 0; i < f.length; i++) {
          if (!(f[i] >= 0 && f[i] <= 1)) {
            throw new AtlasError(
              'BAD_FILE',
              `${path}: latents_activation_frequency[${i}] is ${f[i]}; a firing frequency lies in [0, 1].`,
            );
          }
        }
        return f;
      },
    },
  );
}
