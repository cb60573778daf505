import type { Command } from 'commander';
import { integerOption, loadConfig, numberOption } from '../config.js';
import { generateFromCheckpoint } from '../app/generate.js';

export function register(program: Command): void {
  program
    .command('generate')
    .description('Generate text from a model (llama2.c run.c semantics); prints only the text')
    .requiredOption('--model <path>', 'llama2.c .bin checkpoint or Hugging Face model folder')
    .option(
      '--tokenizer <path>',
      'tokenizer file (default: tokenizer.bin / tok*.bin beside a .bin, tokenizer.json in a folder)',
    )
    .option('--prompt <text>', 'text to continue', '')
    .option('--steps <n>', 'positions to run, prompt included; 0 = the whole context', integerOption('--steps', 0), 256)
    .option('--temperature <t>', '0 = greedy', numberOption('--temperature', 0, 100), 1)
    .option('--topp <p>', 'top-p (nucleus) sampling mass', numberOption('--topp', 0, 1), 0.9)
    .option('--seed <s>', 'random seed (default: current time)', integerOption('--seed', 0))
    .action(
      async (opts: {
        model: string;
        tokenizer?: string;
        prompt: string;
        steps: number;
        temperature: number;
        topp: number;
        seed?: number;
      }) => {
        const text = await generateFromCheckpoint(
          loadConfig(),
          { path: opts.model, tokenizerPath: opts.tokenizer },
          { prompt: opts.prompt, steps: opts.steps, temperature: opts.temperature, topp: opts.topp, seed: opts.seed },
        );
        process.stdout.write(`${text}\n`);
      },
    );
}
