/**
 * Explanations written by people and tools: checks (text, the feature it explains) shared by the
 * addExplanation mutation and `atlas explanations import`, and the mutation itself.
 */
import type { Database } from '../db/client.js';
import { getDictionaries } from '../db/catalog.js';
import { insertExplanations, type ExplanationRow } from '../db/explanations.js';
import type { Caller } from './auth.js';

export const MAX_EXPLANATION_CHARS = 4000;

/** Why a feature cannot take an explanation, and which argument is at fault. */
export interface FeatureProblem {
  field: 'dictionary' | 'index';
  message: string;
}

export interface UserError {
  field: string[];
  message: string;
  code: 'NOT_FOUND' | 'BAD_USER_INPUT';
}

/** Why an explanation's text cannot be stored, or null when it can. Stored verbatim otherwise. */
export function explanationTextProblem(text: unknown): string | null {
  if (typeof text !== 'string' || text.trim() === '') return 'The explanation text is empty.';
  if (text.length > MAX_EXPLANATION_CHARS)
    return `The explanation has ${text.length} characters; at most ${MAX_EXPLANATION_CHARS} are kept.`;
  if (text.includes('\u0000')) return 'The explanation contains a NUL character, which the database cannot store.';
  return null;
}

/**
 * For each explanation, why its feature cannot take it (unknown dictionary, index out of range), or
 * null; one catalog query for any number of rows.
 */
export async function featureProblems(
  database: Database,
  rows: readonly { dictionaryId: string; index: number }[],
): Promise<(FeatureProblem | null)[]> {
  const ids = [...new Set(rows.map((r) => r.dictionaryId))];
  const dicts = new Map((await getDictionaries(database, ids)).map((d) => [d.id, d]));
  return rows.map(({ dictionaryId, index }) => {
    const d = dicts.get(dictionaryId);
    if (!d) return { field: 'dictionary', message: `No dictionary "${dictionaryId}".` };
    if (!Number.isInteger(index) || index < 0 || index >= d.dSae) {
      const message = `Dictionary "${dictionaryId}" has features 0..${d.dSae - 1}; there is no feature ${index}.`;
      return { field: 'index', message };
    }
    return null;
  });
}

/** addExplanation: problems come back as userErrors (nothing written), a stored row otherwise. */
export async function addExplanation(
  database: Database,
  caller: Caller,
  args: { dictionary: string; index: number; text: string },
): Promise<{ explanation: ExplanationRow | null; userErrors: UserError[] }> {
  const userErrors: UserError[] = [];
  const textProblem = explanationTextProblem(args.text);
  if (textProblem) userErrors.push({ field: ['text'], message: textProblem, code: 'BAD_USER_INPUT' });
  const [featureProblem] = await featureProblems(database, [{ dictionaryId: args.dictionary, index: args.index }]);
  if (featureProblem)
    userErrors.push({ field: [featureProblem.field], message: featureProblem.message, code: 'NOT_FOUND' });
  if (userErrors.length) return { explanation: null, userErrors };
  const [explanation] = await insertExplanations(database, [
    { dictionaryId: args.dictionary, index: args.index, text: args.text, source: 'api', author: caller.keyName },
  ]);
  return { explanation, userErrors };
}
