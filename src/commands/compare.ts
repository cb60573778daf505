import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { withDatabase } from '../app/database.js';
import { compareDictionaries, type CompareProgressPhase } from '../app/compare.js';

const PHASES: Record<CompareProgressPhase, string> = {
  reading: 'reading decoders',
  similarity: 'cosines',
  matching: 'one-to-one matching',
  storing: 'storing',
};

export function register(program: Command): void {
  program
    .command('compare <a> <b>')
    .description(
      'Compare two dictionaries by decoder cosine (best matches, mean max cosine, one-to-one PW-MCC) and store the ' +
        'result',
    )
    .option('--recompute', 'compute again even if the comparison is stored')
    .action(async (a: string, b: string, opts: { recompute?: boolean }) => {
      await withDatabase(async (database, config) => {
        const bar = new cliProgress.SingleBar(
          {
            format: 'compare {bar} {percentage}% | {phase} | {duration_formatted}',
            stream: process.stderr,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(100, 0, { phase: PHASES.reading });
        let result;
        try {
          result = await compareDictionaries(database, {
            a,
            b,
            recompute: opts.recompute,
            session: { device: config.device, threads: config.threads },
            onProgress: (phase, f) => bar.update(Math.round(100 * f), { phase: PHASES[phase] }),
          });
        } finally {
          bar.stop();
        }
        const { comparison: c, stored } = result;
        const swapped = c.dictionaryA !== a;
        const s = c.summary;
        console.log(`${a} → ${b}: mean max cosine ${(swapped ? s.meanMaxBA : s.meanMaxAB).toFixed(4)}`);
        console.log(`${b} → ${a}: mean max cosine ${(swapped ? s.meanMaxAB : s.meanMaxBA).toFixed(4)}`);
        if (s.oneToOne) console.log(`one-to-one matching (PW-MCC): ${s.oneToOne.score.toFixed(4)}`);
        console.log(
          stored
            ? `(stored ${new Date(c.createdAt).toISOString()}; --recompute to compute again)`
            : `computed in ${s.seconds.toFixed(1)} s and stored.`,
        );
      });
    });
}
