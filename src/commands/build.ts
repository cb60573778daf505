import type { Command } from 'commander';
import { resolve } from 'node:path';
import { withDatabase } from '../app/database.js';
import { AtlasError, isAtlasError } from '../errors.js';
import { integerOption } from '../config.js';
import { EngineRegistry } from '../app/registry.js';
import { buildDashboards, type BuildProgress } from '../app/build-dashboards.js';
import { mapWithProgress } from './map.js';
import { startProgress } from './progress.js';

const PHASES: Record<BuildProgress['phase'], string> = {
  compare: 'matching decoders of families',
  corpus: 'reading the corpus',
  logits: 'logit lens',
  publish: 'publishing',
};

export function register(program: Command): void {
  program
    .command('build [dictionary...]')
    .description(
      'Compute feature dashboards (densities, histograms, top and band examples, logit lens, labels) over a corpus',
    )
    .requiredOption('--corpus <path>', 'a text file, a folder of text files, or a .jsonl file with a "text" field')
    .option('--model <id>', 'with --all: build every dictionary of this model, sharing one forward pass')
    .option('--all', 'build all dictionaries of --model')
    .option('--tokens <n>', 'stop after this many tokens (BOS excluded)', integerOption('--tokens'))
    .option(
      '--context <n>',
      'tokens per context, BOS included (default 64, at most the model context)',
      integerOption('--context'),
    )
    .option('--batch <n>', 'contexts per forward pass (default: about 4096 tokens)', integerOption('--batch'))
    .option('--no-map', 'do not lay out a feature map for dictionaries without one (`atlas map` does it later)')
    .option(
      '--forward-worker',
      'run the model and encoders in a worker thread, batches ahead of the statistics (needs spare cores and memory ' +
        'for a second copy of the model; slower on 2 cores)',
    )
    .action(
      async (
        ids: string[],
        opts: {
          corpus: string;
          model?: string;
          all?: boolean;
          tokens?: number;
          context?: number;
          batch?: number;
          map: boolean;
          forwardWorker?: boolean;
        },
      ) => {
        if (Boolean(opts.all) !== (opts.model !== undefined))
          throw new AtlasError(
            'BAD_USER_INPUT',
            'Use --model MODEL_ID together with --all (or name dictionaries instead).',
          );
        if (opts.all && ids.length > 0)
          throw new AtlasError('BAD_USER_INPUT', 'Name dictionaries or use --model with --all, not both.');
        await withDatabase(async (database, config) => {
          const registry = new EngineRegistry(config, database);
          const abort = new AbortController();
          // First Ctrl-C: stop after the current batch, publish nothing. A second one exits at once;
          // the publish is one transaction, so even then the previous dashboards stay intact.
          const onSigint = () => {
            if (abort.signal.aborted) process.exit(130);
            process.stderr.write('\nstopping: nothing will be published (Ctrl-C again to quit at once)\n');
            abort.abort();
          };
          process.on('SIGINT', onSigint);
          const progress = startProgress('build', 'tokens');
          try {
            const result = await buildDashboards(database, registry, {
              dictionaryIds: ids,
              modelId: opts.all ? opts.model : undefined,
              corpus: resolve(opts.corpus),
              tokens: opts.tokens,
              context: opts.context,
              batch: opts.batch,
              forwardWorker: opts.forwardWorker,
              signal: abort.signal,
              session: { device: config.device, threads: config.threads },
              onProgress: (p) => progress.update(p.tokens, p.fraction, PHASES[p.phase]),
            });
            progress.stop();
            for (const d of result.dictionaries) {
              const s = d.stats;
              console.log(
                `${d.id}: L0 ${s.l0.toFixed(2)}, dead ${(100 * s.deadFraction).toFixed(1)}%, normalized MSE ` +
                  `${s.normalizedMse.toFixed(4)}, explained variance ${s.explainedVariance.toFixed(4)}`,
              );
            }
            console.log(
              `Built ${result.dictionaries.length} dictionar${result.dictionaries.length === 1 ? 'y' : 'ies'} of ` +
                `${result.modelId} over ${result.tokens} tokens (${result.contexts} contexts) in ` +
                `${result.seconds.toFixed(1)} s (${Math.round(result.tokens / result.seconds)} tokens/s).`,
            );
            // The map depends on the decoders only, so one made earlier is kept.
            if (opts.map) {
              for (const d of result.dictionaries) {
                // The dashboards are published; a map that cannot be made is reported, not fatal.
                await mapWithProgress(database, config, d.id, { keepExisting: true }).catch((e: unknown) => {
                  if (!isAtlasError(e)) throw e;
                  process.stderr.write(`atlas: ${d.id}: no map: ${e.code}: ${e.message}\n`);
                });
              }
            }
          } catch (e) {
            progress.stop();
            if (abort.signal.aborted) {
              process.stderr.write(
                'atlas: build interrupted; nothing was published and the previous dashboards are intact.\n',
              );
              process.exitCode = 130;
              return;
            }
            throw e;
          } finally {
            process.off('SIGINT', onSigint);
            await registry.close();
          }
        });
      },
    );
}
