/**
 * Bulk import of explanations from JSON lines (or one JSON array, as Neuronpedia's export API
 * returns; .gz files are decompressed). Every line is checked first and nothing is written when any
 * is bad, so a fixed file can simply be imported again.
 *
 * Field names accepted (first present wins):
 *   feature index: index, featureIndex, feature_index, feature (an integer or a string of digits)
 *   text:          text, description, explanation
 *   source:        source, typeName (Neuronpedia's explanation type); default "import"
 *   author:        author, explanationModelName, authorId
 *   dictionary:    dictionary, or modelId + layer/saeId naming a dictionary of that model by id or name
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { Database } from '../db/client.js';
import { listDictionaries, type DictionaryRow } from '../db/catalog.js';
import { insertExplanations, type NewExplanation } from '../db/explanations.js';
import { explanationTextProblem, featureProblems } from './explanations.js';
import { AtlasError } from '../errors.js';

export interface ImportExplanationsOptions {
  /** Puts every line in this dictionary (Neuronpedia's modelId/layer are then ignored). */
  dictionary?: string;
  /** Source for lines that name none (default "import"). */
  source?: string;
}

export interface ImportExplanationsResult {
  inserted: number;
  perDictionary: Map<string, number>;
}

/** Problems listed in the error before the rest are only counted. */
const MAX_LISTED = 20;

function first(rec: Record<string, unknown>, names: string[]): unknown {
  for (const n of names) if (rec[n] !== undefined && rec[n] !== null) return rec[n];
  return undefined;
}

function optionalString(v: unknown): string | null {
  return typeof v === 'string' && v.trim() !== '' ? v : typeof v === 'number' ? String(v) : null;
}

/** The records of the file, each with the label of its place ("line 3", "entry 3"). */
function readRecords(file: string): { where: string; value: unknown; problem?: string }[] {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new AtlasError('BAD_FILE', `Cannot read ${file}: ${(e as Error).message}`);
  }
  if (buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new AtlasError('BAD_FILE', `${file} looks gzipped but cannot be decompressed: ${(e as Error).message}`);
    }
  }
  const text = buf.toString('utf8');
  if (text.trimStart().startsWith('[')) {
    let all: unknown;
    try {
      all = JSON.parse(text);
    } catch (e) {
      throw new AtlasError(
        'BAD_FILE',
        `${file} starts with "[" but is not a valid JSON array: ${(e as Error).message}`,
      );
    }
    if (!Array.isArray(all)) throw new AtlasError('BAD_FILE', `${file} is not a JSON array.`);
    return all.map((value, i) => ({ where: `entry ${i + 1}`, value }));
  }
  const out: { where: string; value: unknown; problem?: string }[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push({ where: `line ${i + 1}`, value: JSON.parse(line) });
    } catch (e) {
      out.push({ where: `line ${i + 1}`, value: null, problem: `not valid JSON (${(e as Error).message})` });
    }
  });
  return out;
}

function resolver(dictionaries: DictionaryRow[]): (modelId: string, layer: string) => DictionaryRow[] {
  return (modelId, layer) => dictionaries.filter((d) => d.modelId === modelId && (d.id === layer || d.name === layer));
}

export async function importExplanations(
  database: Database,
  file: string,
  opts: ImportExplanationsOptions = {},
): Promise<ImportExplanationsResult> {
  const records = readRecords(file);
  if (records.length === 0) throw new AtlasError('BAD_FILE', `${file} holds no explanations.`);
  const dictionaries = await listDictionaries(database);
  if (opts.dictionary && !dictionaries.some((d) => d.id === opts.dictionary)) {
    throw new AtlasError('NOT_FOUND', `No dictionary "${opts.dictionary}" (--dictionary).`);
  }
  const byModelLayer = resolver(dictionaries);
  const problems: { at: number; message: string }[] = [];
  const rows: (NewExplanation & { at: number; where: string })[] = [];

  for (const [at, { where, value, problem }] of records.entries()) {
    const fail = (message: string) => problems.push({ at, message: `${where}: ${message}` });
    if (problem) {
      fail(problem);
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      fail('expected a JSON object');
      continue;
    }
    const rec = value as Record<string, unknown>;
    const rawIndex = first(rec, ['index', 'featureIndex', 'feature_index', 'feature']);
    const index =
      typeof rawIndex === 'number'
        ? rawIndex
        : typeof rawIndex === 'string' && /^\d+$/.test(rawIndex.trim())
          ? Number(rawIndex)
          : NaN;
    if (!Number.isInteger(index) || index < 0) {
      fail(
        `needs a feature index (index, featureIndex or feature) that is a non-negative integer, got ` +
          `${JSON.stringify(rawIndex ?? null)}`,
      );
      continue;
    }
    const text = first(rec, ['text', 'description', 'explanation']);
    const textProblem = explanationTextProblem(text);
    if (textProblem) {
      fail(`${textProblem} (fields text, description or explanation)`);
      continue;
    }
    const named = optionalString(rec.dictionary);
    let dictionaryId: string;
    if (opts.dictionary) {
      if (named && named !== opts.dictionary) {
        fail(`names dictionary "${named}" but --dictionary is "${opts.dictionary}"`);
        continue;
      }
      dictionaryId = opts.dictionary;
    } else if (named) {
      dictionaryId = named;
    } else {
      const modelId = optionalString(rec.modelId);
      const layer = optionalString(first(rec, ['layer', 'saeId']));
      if (!modelId || !layer) {
        fail(`does not say which dictionary it is for; give --dictionary, a "dictionary" field, or modelId and layer`);
        continue;
      }
      const found = byModelLayer(modelId, layer);
      if (found.length !== 1) {
        fail(
          found.length === 0
            ? `no dictionary of model "${modelId}" has id or name "${layer}"; pass --dictionary`
            : `"${layer}" names ${found.length} dictionaries of model "${modelId}"; pass --dictionary`,
        );
        continue;
      }
      dictionaryId = found[0].id;
    }
    rows.push({
      at,
      where,
      dictionaryId,
      index,
      text: text as string,
      source: optionalString(first(rec, ['source', 'typeName'])) ?? opts.source ?? 'import',
      author: optionalString(first(rec, ['author', 'explanationModelName', 'authorId'])),
    });
  }

  (await featureProblems(database, rows)).forEach((p, i) => {
    if (p) problems.push({ at: rows[i].at, message: `${rows[i].where}: ${p.message}` });
  });
  if (problems.length) {
    problems.sort((a, b) => a.at - b.at);
    const listed = problems
      .slice(0, MAX_LISTED)
      .map((p) => `  ${p.message}`)
      .join('\n');
    const more = problems.length > MAX_LISTED ? `\n  … and ${problems.length - MAX_LISTED} more` : '';
    throw new AtlasError(
      'BAD_FILE',
      `${file}: ${problems.length} of ${records.length} explanations are not valid; nothing was imported. Fix these ` +
        `and import again:\n${listed}${more}`,
    );
  }
  await insertExplanations(
    database,
    rows.map(({ at: _at, where: _where, ...r }) => r),
  );
  const perDictionary = new Map<string, number>();
  for (const r of rows) perDictionary.set(r.dictionaryId, (perDictionary.get(r.dictionaryId) ?? 0) + 1);
  return { inserted: rows.length, perDictionary };
}
