/**
 * `atlas neuronpedia import DIR --dictionary ID`: a dictionary's Neuronpedia export (features,
 * activations, explanations; see src/engine/dashboards/neuronpedia.ts) served offline as its
 * dashboards and explanations. Every line is read and checked before anything is written; the
 * dashboards are then published in one transaction (replacing earlier examples and logit tokens,
 * keeping the dictionary's build statistics), and the explanations added after them.
 */
import type { Database } from '../db/client.js';
import { requireDictionary, requireModel } from '../db/catalog.js';
import { publishDashboards } from '../db/dashboards.js';
import { insertExplanations } from '../db/explanations.js';
import { readNeuronpediaExport } from '../engine/dashboards/neuronpedia.js';
import { AtlasError } from '../errors.js';
import type { EngineRegistry } from './registry.js';
import { explanationTextProblem } from './explanations.js';

/** Problems listed in the error before the rest are only counted. */
const MAX_LISTED = 20;

export interface NeuronpediaImportResult {
  features: number;
  examples: number;
  logits: number;
  explanations: number;
}

export async function importNeuronpedia(
  database: Database,
  registry: EngineRegistry,
  dir: string,
  dictionaryId: string,
): Promise<NeuronpediaImportResult> {
  const dict = await requireDictionary(database, dictionaryId);
  const tokenizer = await registry.withModel(await requireModel(database, dict.modelId), (m) => m.tokenizer);
  // Neuronpedia stores token texts; the model's vocabulary gives their ids.
  const ids = new Map<string, number>();
  for (let id = tokenizer.vocabSize - 1; id >= 0; id--) ids.set(tokenizer.tokenText(id), id);
  const data = readNeuronpediaExport(dir, dict.dSae, (text) => ids.get(text) ?? -1);
  for (const e of data.explanations) {
    const problem = explanationTextProblem(e.text);
    if (problem) data.problems.push(`explanation of feature ${e.index}: ${problem}`);
  }
  if (data.problems.length) {
    const listed = data.problems
      .slice(0, MAX_LISTED)
      .map((p) => `  ${p}`)
      .join('\n');
    const more = data.problems.length > MAX_LISTED ? `\n  … and ${data.problems.length - MAX_LISTED} more` : '';
    throw new AtlasError(
      'BAD_FILE',
      `${dir}: ${data.problems.length} line(s) are not valid; nothing was imported. Fix these and import ` +
        `again:\n${listed}${more}`,
    );
  }
  if (data.features.length + data.exampleCount + data.explanations.length === 0) {
    throw new AtlasError('BAD_FILE', `${dir} holds no features, activations or explanations.`);
  }
  await publishDashboards(database, [
    {
      dictionaryId: dict.id,
      stats: null,
      features: data.features,
      contexts: data.contexts,
      examples: data.examples,
      logits: data.logits,
    },
  ]);
  if (data.explanations.length) {
    await insertExplanations(
      database,
      data.explanations.map((e) => ({
        dictionaryId: dict.id,
        index: e.index,
        text: e.text,
        source: e.source,
        author: e.author,
      })),
    );
  }
  return {
    features: data.features.length,
    examples: data.exampleCount,
    logits: data.logits.reduce((n, l) => n + l.positive.length + l.negative.length, 0),
    explanations: data.explanations.length,
  };
}
