/** `atlas generate`: text sampled from a checkpoint on disk (run.c semantics for llama2.c files). */
import type { Config } from '../config.js';
import { generate, type GenerateOptions } from '../engine/generate.js';
import { loadModel } from '../engine/model/load.js';

export async function generateFromCheckpoint(
  config: Pick<Config, 'dataDir' | 'device' | 'threads'>,
  checkpoint: { path: string; tokenizerPath?: string },
  opts: GenerateOptions,
): Promise<string> {
  const model = await loadModel(checkpoint.path, {
    tokenizerPath: checkpoint.tokenizerPath,
    dataDir: config.dataDir,
    device: config.device,
    threads: config.threads,
  });
  try {
    return (await generate(model, opts)).text;
  } finally {
    await model.close();
  }
}
