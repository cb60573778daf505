/** One entry point for every dictionary format: detects the format from what the path holds. */
import { existsSync, statSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AtlasError } from '../../errors.js';
import { SaeSource } from './types.js';
import { SAELENS_WEIGHTS, openSaelens } from './readers/saelens.js';
import { SPARSIFY_WEIGHTS, openSparsify } from './readers/sparsify.js';
import { openGemmaScope } from './readers/gemmascope.js';

/**
 * `path` is a folder (SAELens: cfg.json + sae_weights.safetensors; sparsify: cfg.json +
 * sae.safetensors; Gemma Scope: params.npz) or a file inside one, or an .npz file itself.
 */
export function openSae(path: string): SaeSource {
  if (!existsSync(path)) throw new AtlasError('BAD_FILE', `${path} does not exist.`);
  if (statSync(path).isFile()) {
    if (path.endsWith('.npz')) return openGemmaScope(path);
    const name = basename(path);
    if (name === 'cfg.json' || name === SAELENS_WEIGHTS || name === SPARSIFY_WEIGHTS) return openSae(dirname(path));
    throw new AtlasError('UNSUPPORTED', `${path} is not a recognised SAE file; give a SAELens or sparsify folder or a Gemma Scope params.npz.`);
  }
  if (existsSync(join(path, 'params.npz'))) return openGemmaScope(join(path, 'params.npz'));
  if (existsSync(join(path, SAELENS_WEIGHTS))) return openSaelens(path);
  if (existsSync(join(path, SPARSIFY_WEIGHTS))) return openSparsify(path);
  const has = readdirSync(path).slice(0, 20).join(', ') || 'nothing';
  throw new AtlasError('BAD_FILE', `${path} holds no SAE dictionary: expected ${SAELENS_WEIGHTS} + cfg.json (SAELens), ${SPARSIFY_WEIGHTS} + cfg.json (sparsify) or params.npz (Gemma Scope); it has ${has}.`);
}
