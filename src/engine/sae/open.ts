/** One entry point for every dictionary format: detects the format from what the path holds. */
import { existsSync, statSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AtlasError } from '../../errors.js';
import { TorchStateDict } from '../tensors/torch.js';
import { SaeSource } from './types.js';
import { SAELENS_WEIGHTS, openSaelens } from './readers/saelens.js';
import { SPARSIFY_WEIGHTS, openSparsify } from './readers/sparsify.js';
import { openGemmaScope } from './readers/gemmascope.js';
import { isOpenAiStateDict, openOpenAi } from './readers/openai.js';
import {
  DICTIONARY_LEARNING_CONFIG,
  isDictionaryLearning,
  openDictionaryLearning,
} from './readers/dictionary-learning.js';
import { isGoodfireStateDict, openGoodfire } from './readers/goodfire.js';
import { LLAMASCOPE_CONFIG, llamaScopeWeights, openLlamaScope } from './readers/llamascope.js';

const TORCH_FILE = /\.(pt|pth)$/;

/**
 * `path` is a folder (SAELens: cfg.json + sae_weights.safetensors; sparsify: cfg.json +
 * sae.safetensors; Gemma Scope: params.npz; Llama Scope: hyperparams.json + checkpoints/final.safetensors;
 * one PyTorch .pt/.pth checkpoint, with config.json for dictionary_learning) or a file inside one,
 * or an .npz or .pt/.pth file itself.
 */
export function openSae(path: string): SaeSource {
  if (!existsSync(path)) throw new AtlasError('BAD_FILE', `${path} does not exist.`);
  if (statSync(path).isFile()) {
    if (path.endsWith('.npz')) return openGemmaScope(path);
    if (TORCH_FILE.test(path)) return openTorchDictionary(path);
    const name = basename(path);
    if (name === 'cfg.json' || name === SAELENS_WEIGHTS || name === SPARSIFY_WEIGHTS || name === LLAMASCOPE_CONFIG)
      return openSae(dirname(path));
    if (name === 'final.safetensors')
      return openSae(basename(dirname(path)) === 'checkpoints' ? dirname(dirname(path)) : dirname(path));
    throw new AtlasError(
      'UNSUPPORTED',
      `${path} is not a recognised SAE file; give a SAELens or sparsify folder, a Gemma Scope params.npz or a ` +
        `PyTorch .pt/.pth checkpoint.`,
    );
  }
  if (existsSync(join(path, 'params.npz'))) return openGemmaScope(join(path, 'params.npz'));
  if (existsSync(join(path, SAELENS_WEIGHTS))) return openSaelens(path);
  if (existsSync(join(path, SPARSIFY_WEIGHTS))) return openSparsify(path);
  if (existsSync(join(path, LLAMASCOPE_CONFIG))) return openLlamaScope(path);
  const torchFiles = readdirSync(path).filter((f) => TORCH_FILE.test(f));
  if (torchFiles.length === 1) return openTorchDictionary(join(path, torchFiles[0]));
  const has = readdirSync(path).slice(0, 20).join(', ') || 'nothing';
  throw new AtlasError(
    'BAD_FILE',
    `${path} holds no SAE dictionary: expected ${SAELENS_WEIGHTS} + cfg.json (SAELens), ${SPARSIFY_WEIGHTS} + ` +
      `cfg.json (sparsify), params.npz (Gemma Scope), ${LLAMASCOPE_CONFIG} + checkpoints/final.safetensors (Llama ` +
      `Scope) or one .pt/.pth checkpoint (OpenAI, dictionary_learning ae.pt + config.json, Goodfire); it has ${has}.`,
  );
}

/** The files that make up the dictionary at `path`: what `atlas import` copies for the server to open. */
export function dictionaryFiles(path: string): string[] {
  if (statSync(path).isFile()) {
    if (path.endsWith('.npz')) return [path];
    if (TORCH_FILE.test(path))
      return isDictionaryLearning(path) ? [path, join(dirname(path), DICTIONARY_LEARNING_CONFIG)] : [path];
    const name = basename(path);
    if (name === 'final.safetensors' && basename(dirname(path)) === 'checkpoints')
      return dictionaryFiles(dirname(dirname(path)));
    return dictionaryFiles(dirname(path));
  }
  if (existsSync(join(path, LLAMASCOPE_CONFIG))) return [join(path, LLAMASCOPE_CONFIG), llamaScopeWeights(path)];
  return readdirSync(path)
    .filter((f) => /\.(json|safetensors|npz|pt|pth)$/.test(f))
    .map((f) => join(path, f));
}

/**
 * A name for the dictionary at `path`: its folder's name, except for a checkpoint file that is one
 * of many in its folder (OpenAI's <release>/autoencoders/8.pt → "<release>-8", Goodfire's .pth →
 * its file name without the extension).
 */
export function dictionaryName(path: string): string {
  if (!statSync(path).isFile()) return basename(path);
  if (basename(path) === 'final.safetensors' && basename(dirname(path)) === 'checkpoints')
    return basename(dirname(dirname(path)));
  if (!TORCH_FILE.test(path) || isDictionaryLearning(path)) return basename(dirname(path));
  const stem = basename(path).replace(TORCH_FILE, '');
  const folder = dirname(path);
  return basename(folder) === 'autoencoders' ? `${basename(dirname(folder))}-${stem}` : stem;
}

/** A PyTorch checkpoint, read safely; which publisher wrote it is told by its state dict's names. */
function openTorchDictionary(path: string): SaeSource {
  const sd = TorchStateDict.open(path);
  try {
    if (isDictionaryLearning(path)) return openDictionaryLearning(sd);
    if (isOpenAiStateDict(sd)) return openOpenAi(sd);
    if (isGoodfireStateDict(sd)) return openGoodfire(sd);
    const names = [...sd.tensors.keys()].slice(0, 20).join(', ') || 'no tensors';
    throw new AtlasError(
      'UNSUPPORTED',
      `${path} is a PyTorch checkpoint of no known dictionary layout (it has ${names}); supported: OpenAI ` +
        `sparse_autoencoder, dictionary_learning (ae.pt + config.json), Goodfire.`,
    );
  } catch (e) {
    sd.close();
    throw e;
  }
}
