/**
 * Gemma Scope `params.npz`: W_enc [d_model, d_sae], W_dec [d_sae, d_model], b_enc, b_dec,
 * threshold. JumpReLU with no b_dec subtraction on the input and no normalization. Transcoder
 * releases (gemma-scope-…-transcoders) read the MLP input (ln2.hook_normalized) and reconstruct
 * its output (hook_mlp_out).
 */
import { AtlasError } from '../../../errors.js';
import { SaeConfig, SaeSource } from '../types.js';
import { DTYPE_NAMES, npzReader, readChecked, requireTensor, streamRows } from './common.js';

/** Transcoder release paths look like .../gemma-scope-2b-pt-transcoders/layer_3/width_16k/average_l0_54/params.npz. */
function transcoderLayer(path: string): string | null {
  return /gemma-scope-[^/]*-transcoders[^/]*\/layer_(\d+)\//.exec(path.replace(/\\/g, '/'))?.[1] ?? null;
}

/** Release paths look like .../gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz. */
function hookFromPath(path: string): string | null {
  const layer = transcoderLayer(path);
  if (layer !== null) return `blocks.${layer}.ln2.hook_normalized`;
  const m = /gemma-scope-[^/]*-(res|mlp|att)[^/]*\/layer_(\d+)\//.exec(path.replace(/\\/g, '/'));
  if (!m) return null;
  const hook = { res: 'hook_resid_post', mlp: 'hook_mlp_out', att: 'attn.hook_z' }[m[1] as 'res' | 'mlp' | 'att'];
  return `blocks.${m[2]}.${hook}`;
}

export function openGemmaScope(npzPath: string): SaeSource {
  const r = npzReader(npzPath);
  try {
    if (!r.has('W_enc'))
      throw new AtlasError('BAD_FILE', `${npzPath} is missing array "W_enc" (expected shape [d_model, d_sae]).`);
    const encShape = r.shape('W_enc');
    if (encShape.length !== 2) {
      throw new AtlasError(
        'BAD_FILE',
        `${npzPath}: array "W_enc" has shape [${encShape.join(', ')}] but a 2-D [d_model, d_sae] array was expected.`,
      );
    }
    const [dIn, dSae] = encShape;
    const shapes: Record<string, number[]> = {
      W_enc: [dIn, dSae],
      W_dec: [dSae, dIn],
      b_enc: [dSae],
      b_dec: [dIn],
      threshold: [dSae],
    };
    for (const [name, shape] of Object.entries(shapes)) requireTensor(r, name, shape);
    const config: SaeConfig = {
      architecture: 'jumprelu',
      dIn,
      dSae,
      k: null,
      hookName: hookFromPath(npzPath),
      modelName: null,
      prependBos: null,
      applyBDecToInput: false,
      ...(transcoderLayer(npzPath) !== null && {
        transcoder: { hookNameOut: `blocks.${transcoderLayer(npzPath)}.hook_mlp_out`, skip: false },
      }),
      normalization: { kind: 'none', scalingFactor: null },
      sourceFormat: 'gemmascope',
      dtype: DTYPE_NAMES[r.dtype('W_dec')] ?? r.dtype('W_dec'),
      extra: {},
    };
    return {
      config,
      decoderRows: (batchRows) => streamRows(r, 'W_dec', dSae, dIn, batchRows),
      loadParams: () => ({
        W_enc: readChecked(r, 'W_enc', shapes.W_enc),
        b_enc: readChecked(r, 'b_enc', shapes.b_enc),
        W_dec: readChecked(r, 'W_dec', shapes.W_dec),
        b_dec: readChecked(r, 'b_dec', shapes.b_dec),
        threshold: readChecked(r, 'threshold', shapes.threshold),
      }),
      logSparsity: () => null,
      density: () => null,
      close: () => r.close(),
    };
  } catch (e) {
    r.close();
    throw e;
  }
}
