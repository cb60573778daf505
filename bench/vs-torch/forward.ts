/**
 * Model forward to a hook at GPT-2-small shape (12 layers, d 768, 12 heads, vocab 50257, context 1024;
 * random weights of the real shapes): the atlas's hook runner (loadModel → runHooks, the ONNX graph cut
 * at the hook) against tools/demo/gpt2.py (Hugging Face's GPT-2 layout) run through the same blocks,
 * on one sequence of 64 and of 512 tokens, hook blocks.<--layer>.hook_resid_post (default the last).
 * The checkpoint (500 MB) and its ONNX conversion stay in $TMPDIR/atlas-vs-torch-gpt2-small between
 * runs; delete the folder to rebuild them.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/engine/model/load.js';
import { writeTinyGpt2 } from '../../test/helpers/hf-fixtures.js';
import { writeGpt2TokenizerJson } from '../../test/helpers/tokenizer-fixtures.js';
import { arg } from '../util.js';
import { relDiff, type Path } from './common.js';

const LAYERS = 12;
const layer = Number(arg('layer', String(LAYERS - 1)));
const VOCAB = 50257;
const TOKENS = [64, 512];
/** float32 through 12 layers in a different operation order: agreement to ~1e-6, checked at 1e-4. */
const FORWARD_TOL = 1e-4;

export const GPT2_SMALL_DIR = join(tmpdir(), 'atlas-vs-torch-gpt2-small');

/**
 * The GPT-2-small-shaped checkpoint (written once, renamed into place when complete), the folder its
 * conversions are cached in, and a tokenizer: the fixture tokenizer cannot learn 50k merges from its
 * corpus, so a 384-token one stands beside it (token ids are fed directly; loadModel only needs one).
 */
export function gpt2Small(log: (line: string) => void): { model: string; tokenizer: string; dataDir: string } {
  const model = join(GPT2_SMALL_DIR, 'model');
  const tokenizer = join(GPT2_SMALL_DIR, 'tokenizer');
  if (!existsSync(model)) {
    log(`writing a random GPT-2-small-shaped checkpoint to ${model} …`);
    const partial = `${model}.partial`;
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(partial, { recursive: true });
    const shape = { dModel: 768, nLayers: LAYERS, nHeads: 12, nKvHeads: 12, dHead: 64, dMlp: 3072 };
    writeTinyGpt2(partial, { shape: { ...shape, vocabSize: VOCAB, contextLength: 1024 }, tokenizer: false });
    mkdirSync(tokenizer, { recursive: true });
    writeGpt2TokenizerJson(tokenizer, 384);
    renameSync(partial, model);
  }
  return { model, tokenizer: join(tokenizer, 'tokenizer.json'), dataDir: join(GPT2_SMALL_DIR, 'data') };
}

export const forwardPath: Path = {
  name: 'forward',
  describe:
    `model forward: GPT-2 small shape, random weights, one sequence to blocks.${layer}.hook_resid_post; ` +
    'atlas loadModel → runHooks (ONNX, graph cut at the hook) vs tools/demo/gpt2.py blocks 0…' +
    `${layer} (no LM head)`,
  async setup({ torch, dir, threads, iters, log }) {
    const { model: path, tokenizer, dataDir } = gpt2Small(log);
    log('loading the GPT-2-small-shaped model on both sides (the first run converts it to ONNX) …');
    const model = await loadModel(path, { tokenizerPath: tokenizer, dataDir, device: 'cpu', threads });
    await torch.call({ op: 'gpt2_load', name: 'gpt2-small', dir: path });
    const hook = `blocks.${layer}.hook_resid_post`;
    const cases = TOKENS.map((n) => {
      const tokens = Array.from({ length: n }, (_, i) => (i * 7919 + 13) % VOCAB);
      const run = () => model.runHooks([tokens], [hook]);
      const cmd = { op: 'gpt2_forward', name: 'gpt2-small', tokens, layer };
      return {
        path: 'forward to hook (GPT-2 small)',
        size: `${n} tokens`,
        atlas: run,
        torch: () => torch.times({ ...cmd, iters }),
        check: async () => {
          const read = await torch.outputs(dir, cmd);
          const got = (await run()).get(hook)!;
          return relDiff(got.data, new Float32Array(read('hook')), `forward ${n} tokens`, FORWARD_TOL);
        },
      };
    });
    return { cases, close: () => model.close() };
  },
};
