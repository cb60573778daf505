/**
 * Goodfire's released dictionaries (e.g. Llama-3.1-8B-Instruct-SAE-l19.pth): a torch.save'd state
 * dict of two nn.Linear layers, encoder_linear {weight [h, d], bias [h]} and decoder_linear
 * {weight [d, h], bias [d]}. Published model: f = relu(encoder_linear(x)), x_hat = decoder_linear(f),
 * i.e. the standard architecture without x - b_dec, b_dec = decoder_linear.bias.
 * The file name ends in "-l<layer>.pth", the residual stream after that decoder layer.
 */
import { basename } from 'node:path';
import { AtlasError } from '../../../errors.js';
import { TorchStateDict } from '../../tensors/torch.js';
import { SaeConfig, SaeSource } from '../types.js';
import { DTYPE_NAMES, torchReader } from './common.js';
import { mappedSource } from './mapped.js';

export function isGoodfireStateDict(sd: TorchStateDict): boolean {
  return sd.has('encoder_linear.weight') && sd.has('decoder_linear.weight');
}

export function openGoodfire(sd: TorchStateDict): SaeSource {
  const r = torchReader(sd);
  const enc = r.shape('encoder_linear.weight');
  if (enc.length !== 2)
    throw new AtlasError(
      'BAD_FILE',
      `${sd.path}: tensor "encoder_linear.weight" has shape [${enc.join(', ')}] but [d_hidden, d_in] was expected.`,
    );
  const [dSae, dIn] = enc;
  const layer = /-l(\d+)\.pth?$/.exec(basename(sd.path))?.[1];
  const config: SaeConfig = {
    architecture: 'standard',
    dIn,
    dSae,
    k: null,
    hookName: layer === undefined ? null : `blocks.${layer}.hook_resid_post`,
    modelName: null,
    prependBos: null,
    applyBDecToInput: false,
    normalization: { kind: 'none', scalingFactor: null },
    sourceFormat: 'goodfire',
    dtype: DTYPE_NAMES[r.dtype('encoder_linear.weight')] ?? r.dtype('encoder_linear.weight'),
    extra: { file: basename(sd.path) },
  };
  return mappedSource(r, config, {
    W_enc: { tensor: 'encoder_linear.weight', layout: 'T' },
    b_enc: { tensor: 'encoder_linear.bias', layout: 'same' },
    W_dec: { tensor: 'decoder_linear.weight', layout: 'T' },
    b_dec: { tensor: 'decoder_linear.bias', layout: 'same' },
  });
}
