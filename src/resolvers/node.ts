/**
 * Global object identification (Relay): every `id` is unique across types, so `node(id:)` can tell
 * the type from the id alone. Models and dictionaries keep their names (one shared namespace, see
 * db/catalog.ts assertIdFree); the ids of everything else contain a character names may not:
 * `<dictionary>:<index>` for a feature, `explanation/<n>` for an explanation, and `<owner id>/<field>`
 * for the value objects clients cache beside their owner (histograms, logit lenses, statistics).
 */
import type { Context } from './context.js';
import type { ModelRow, DictionaryRow } from '../db/catalog.js';
import type { FeatureRow } from '../db/features.js';
import type { ExplanationRow } from '../db/explanations.js';
import type { QueryResolvers, ResolversTypes } from './generated.js';

export const featureId = (f: { dictionaryId: string; index: number }) => `${f.dictionaryId}:${f.index}`;
export const explanationId = (e: { id: number }) => `explanation/${e.id}`;
export const comparisonId = (a: string, b: string) => `comparison/${a}/${b}`;

const FEATURE_ID = /^([^:/]+):(\d{1,10})$/;
const EXPLANATION_ID = /^explanation\/(\d{1,10})$/;

type NodeRow =
  | { __typename: 'Model'; row: ModelRow }
  | { __typename: 'Dictionary'; row: DictionaryRow }
  | { __typename: 'Feature'; row: FeatureRow }
  | { __typename: 'Explanation'; row: ExplanationRow };

async function findNode(ctx: Context, id: string): Promise<NodeRow | null> {
  const feature = FEATURE_ID.exec(id);
  if (feature) {
    const row = await ctx.loaders.feature.load({ dictionaryId: feature[1], index: Number(feature[2]) });
    return row && { __typename: 'Feature', row };
  }
  const explanation = EXPLANATION_ID.exec(id);
  if (explanation) {
    const row = await ctx.loaders.explanation.load(Number(explanation[1]));
    return row && { __typename: 'Explanation', row };
  }
  const [model, dictionary] = await Promise.all([ctx.loaders.model.load(id), ctx.loaders.dictionary.load(id)]);
  if (model) return { __typename: 'Model', row: model };
  return dictionary && { __typename: 'Dictionary', row: dictionary };
}

/** The rows each node type resolves from, tagged so Node.__resolveType can name the type. */
const typeOf = new WeakMap<object, NodeRow['__typename']>();

export const nodeResolvers = {
  Query: {
    node: async (_, args, ctx) => {
      const found = await findNode(ctx, args.id);
      if (!found) return null;
      typeOf.set(found.row, found.__typename);
      return found.row as ResolversTypes['Node'];
    },
  } satisfies QueryResolvers,
  Node: {
    __resolveType: (row: object) => typeOf.get(row) ?? null,
  },
};
