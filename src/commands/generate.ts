import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { AtlasError } from '../errors.js';
import { generateFromCheckpoint } from '../app/generate.js';

function num(name: string, integer: boolean) {
  return (raw: string): number => {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
      throw new AtlasError('BAD_USER_INPUT', `--${name} must be ${integer ? 'an integer' : 'a number'}, got "${raw}".`);
    }
    return v;
  };
}

export function register(program: Command): void {
  program
    .command('generate')
    .description('Generate text from a model (llama2.c run.c semantics); prints only the text')
    .requiredOption('--model <path>', 'llama2.c .bin checkpoint or Hugging Face model folder')
    .option('--tokenizer <path>', 'tokenizer file (default: tokenizer.bin / tok*.bin beside a .bin, tokenizer.json in a folder)')
    .option('--prompt <text>', 'text to continue', '')
    .option('--steps <n>', 'positions to run, prompt included; 0 = the whole context', num('steps', true), 256)
    .option('--temperature <t>', '0 = greedy', num('temperature', false), 1)
    .option('--topp <p>', 'top-p (nucleus) sampling mass', num('topp', false), 0.9)
    .option('--seed <s>', 'random seed (default: current time)', num('seed', true))
    .action(async (opts: { model: string; tokenizer?: string; prompt: string; steps: number; temperature: number; topp: number; seed?: number }) => {
      const text = await generateFromCheckpoint(
        loadConfig(),
        { path: opts.model, tokenizerPath: opts.tokenizer },
        { prompt: opts.prompt, steps: opts.steps, temperature: opts.temperature, topp: opts.topp, seed: opts.seed },
      );
      process.stdout.write(`${text}\n`);
    });
}
