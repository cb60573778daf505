/**
 * Per-request DataLoaders: a page of features with their dictionaries and models costs a constant number of queries.
 */
import DataLoader from 'dataloader';
import type { Database } from '../db/client.js';
import {
  getModels,
  getDictionaries,
  getDictionariesOfModels,
  type ModelRow,
  type DictionaryRow,
} from '../db/catalog.js';
import {
  getFeatures,
  getDecoders,
  countFeatures,
  featureKey,
  type FeatureKey,
  type FeatureRow,
} from '../db/features.js';
import {
  getTopActivations,
  getQuantileExamples,
  getLogitTokens,
  type ActivationExample,
  type BandExample,
  type FeatureLogitTokens,
} from '../db/dashboards.js';
import { getExplanations, getExplanationsOfFeatures, type ExplanationRow } from '../db/explanations.js';
import { getFeatureMaps, getMapPoints, type FeatureMapRow, type MapPoint } from '../db/feature-maps.js';
import {
  getMatchesOfFeatures,
  getFamilies,
  familyKey,
  type FamilyKey,
  type FamilyRow,
  type MatchRow,
} from '../db/comparisons.js';

export interface Loaders {
  model: DataLoader<string, ModelRow | null>;
  dictionary: DataLoader<string, DictionaryRow | null>;
  dictionariesOfModel: DataLoader<string, DictionaryRow[]>;
  feature: DataLoader<FeatureKey, FeatureRow | null, string>;
  decoder: DataLoader<FeatureKey, number[] | null, string>;
  featureCount: DataLoader<string, number>;
  topActivations: DataLoader<FeatureKey, ActivationExample[], string>;
  quantileExamples: DataLoader<FeatureKey, BandExample[], string>;
  logits: DataLoader<FeatureKey, FeatureLogitTokens | null, string>;
  explanations: DataLoader<FeatureKey, ExplanationRow[], string>;
  explanation: DataLoader<number, ExplanationRow | null>;
  featureMap: DataLoader<string, FeatureMapRow | null>;
  mapPoint: DataLoader<FeatureKey, MapPoint | null, string>;
  related: DataLoader<FeatureKey, MatchRow[], string>;
  family: DataLoader<FamilyKey, FamilyRow[], string>;
}

export function createLoaders(database: Database): Loaders {
  return {
    model: new DataLoader(async (ids) => {
      const rows = new Map((await getModels(database, ids)).map((r) => [r.id, r]));
      return ids.map((id) => rows.get(id) ?? null);
    }),
    dictionary: new DataLoader(async (ids) => {
      const rows = new Map((await getDictionaries(database, ids)).map((r) => [r.id, r]));
      return ids.map((id) => rows.get(id) ?? null);
    }),
    dictionariesOfModel: new DataLoader(async (modelIds) => {
      const rows = await getDictionariesOfModels(database, modelIds);
      return modelIds.map((m) => rows.filter((r) => r.modelId === m));
    }),
    feature: new DataLoader(
      async (keys) => {
        const rows = await getFeatures(database, keys);
        return keys.map((k) => rows.get(featureKey(k)) ?? null);
      },
      { cacheKeyFn: featureKey },
    ),
    decoder: new DataLoader(
      async (keys) => {
        const rows = await getDecoders(database, keys);
        return keys.map((k) => rows.get(featureKey(k)) ?? null);
      },
      { cacheKeyFn: featureKey },
    ),
    featureCount: new DataLoader(async (ids) => {
      const counts = await countFeatures(database, ids);
      return ids.map((id) => counts.get(id) ?? 0);
    }),
    topActivations: new DataLoader(
      async (keys) => {
        const rows = await getTopActivations(database, keys);
        return keys.map((k) => rows.get(featureKey(k)) ?? []);
      },
      { cacheKeyFn: featureKey },
    ),
    quantileExamples: new DataLoader(
      async (keys) => {
        const rows = await getQuantileExamples(database, keys);
        return keys.map((k) => rows.get(featureKey(k)) ?? []);
      },
      { cacheKeyFn: featureKey },
    ),
    logits: new DataLoader(
      async (keys) => {
        const rows = await getLogitTokens(database, keys);
        return keys.map((k) => rows.get(featureKey(k)) ?? null);
      },
      { cacheKeyFn: featureKey },
    ),
    explanations: new DataLoader(
      async (keys) => {
        const rows = await getExplanationsOfFeatures(database, keys);
        return keys.map((k) => rows.get(featureKey(k)) ?? []);
      },
      { cacheKeyFn: featureKey },
    ),
    explanation: new DataLoader(async (ids) => {
      const rows = await getExplanations(database, ids);
      return ids.map((id) => rows.get(id) ?? null);
    }),
    featureMap: new DataLoader(async (ids) => {
      const rows = await getFeatureMaps(database, ids);
      return ids.map((id) => rows.get(id) ?? null);
    }),
    mapPoint: new DataLoader(
      async (keys) => {
        const rows = await getMapPoints(database, keys);
        return keys.map((k) => rows.get(featureKey(k)) ?? null);
      },
      { cacheKeyFn: featureKey },
    ),
    related: new DataLoader(
      async (keys) => {
        const rows = await getMatchesOfFeatures(database, keys);
        return keys.map((k) => rows.get(featureKey(k)) ?? []);
      },
      { cacheKeyFn: featureKey },
    ),
    family: new DataLoader(
      async (keys) => {
        const rows = await getFamilies(database, keys);
        return keys.map((k) => rows.get(familyKey(k)) ?? []);
      },
      { cacheKeyFn: familyKey },
    ),
  };
}
