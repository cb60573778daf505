/**
 * The catalog, one drizzle schema for both backends. Decoder vectors live in an untyped pgvector
 * column because dictionaries differ in width; each dictionary gets its own partial HNSW index over
 * an expression that casts to its fixed width (see src/db/vector-index.ts). They sit in their own
 * table, apart from the per-feature statistics that `atlas build` rewrites: an UPDATE of an indexed
 * column writes a new row version into every index of its table, HNSW included.
 */
import { sql } from 'drizzle-orm';
import {
  pgTable,
  text,
  integer,
  real,
  doublePrecision,
  boolean,
  jsonb,
  timestamp,
  primaryKey,
  index,
  serial,
  customType,
  uniqueIndex,
  bigint,
} from 'drizzle-orm/pg-core';

/** pgvector `vector` without a fixed dimension; values travel as pgvector text ('[1,2,3]'). */
export const anyVector = customType<{ data: number[]; driverData: string }>({
  dataType: () => 'vector',
  toDriver: (v) => `[${v.join(',')}]`,
  fromDriver: (v) => JSON.parse(v) as number[],
});

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

/**
 * The files a server needs for a model or a dictionary, by content (src/app/artifacts.ts): each file's
 * name inside the bundle folder and its sha256. `version` hashes the whole list, so a replica holding
 * another version knows its copy is stale.
 */
export interface ArtifactManifest {
  version: string;
  /** What to open, relative to the bundle folder ('.' for the folder itself). */
  entry: string;
  /** A tokenizer given apart from the checkpoint, relative to the bundle folder. */
  tokenizer: string | null;
  files: { name: string; sha256: string; size: number }[];
  /** PGlite: the folder of the store that holds the files (on PostgreSQL they are in the database). */
  folder?: string;
  /**
   * Models: the ONNX graph `atlas model add` converted, stored so replicas fetch it instead of converting;
   * `key` names its folder in <data dir>/onnx/, `builder` the graph builder version that made it.
   */
  converted?: { key: string; builder: string; files: { name: string; sha256: string; size: number }[] };
}

export const models = pgTable('models', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  architecture: text('architecture').notNull(),
  dModel: integer('d_model').notNull(),
  nLayers: integer('n_layers').notNull(),
  vocabSize: integer('vocab_size').notNull(),
  contextLength: integer('context_length').notNull(),
  prependBos: boolean('prepend_bos').notNull(),
  hookPoints: jsonb('hook_points').$type<string[]>().notNull(),
  /** Width of each hook point's vectors; one absent here (rows older than this column) is d_model wide. */
  hookWidths: jsonb('hook_widths')
    .$type<Record<string, number>>()
    .notNull()
    .default(sql`'{}'::jsonb`),
  sourcePath: text('source_path').notNull(),
  sourceFormat: text('source_format').notNull(),
  tokenizerPath: text('tokenizer_path'),
  /** The checkpoint and tokenizer files by content; null for rows registered before the artifact store. */
  artifacts: jsonb('artifacts').$type<ArtifactManifest>(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Statistics of a dictionary over a corpus, written by `atlas build`. */
export interface DictionaryStats {
  tokens: number;
  l0: number;
  deadFraction: number;
  normalizedMse: number;
  explainedVariance: number;
  corpus: string;
  builtAt: string;
}

export const dictionaries = pgTable(
  'dictionaries',
  {
    id: text('id').primaryKey(),
    modelId: text('model_id')
      .notNull()
      .references(() => models.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    hookPoint: text('hook_point').notNull(),
    /** Transcoders: the hook the decoder reconstructs; null for autoencoders (they reconstruct hookPoint). */
    hookPointOut: text('hook_point_out'),
    /** Whether sequences start with BOS for this dictionary: its file's policy, else its model's default at import. */
    prependBos: boolean('prepend_bos').notNull(),
    dIn: integer('d_in').notNull(),
    dSae: integer('d_sae').notNull(),
    architecture: text('architecture').notNull(),
    k: integer('k'),
    /** Architecture parameters beyond k: normalization kind and factor, apply_b_dec_to_input, … */
    params: jsonb('params')
      .$type<Record<string, unknown>>()
      .notNull()
      .default(sql`'{}'::jsonb`),
    sourceFormat: text('source_format').notNull(),
    sourcePath: text('source_path'),
    /** Rows imported before the artifact store: the folder of encoder weights on the importing machine. */
    weightsPath: text('weights_path'),
    /** The encoder weight files by content; its version changes with every `--replace`. */
    artifacts: jsonb('artifacts').$type<ArtifactManifest>(),
    /** 'importing' until every feature row and the index exist; readers only see 'ready'. */
    state: text('state').notNull().default('importing'),
    stats: jsonb('stats').$type<DictionaryStats>(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('dictionaries_model_idx').on(t.modelId)],
);

export const features = pgTable(
  'features',
  {
    // ON UPDATE: `--replace` writes the new rows under a hidden id and renames it in one transaction.
    dictionaryId: text('dictionary_id')
      .notNull()
      .references(() => dictionaries.id, { onDelete: 'cascade', onUpdate: 'cascade' }),
    idx: integer('idx').notNull(),
    decoderNorm: real('decoder_norm').notNull(),
    density: real('density'),
    maxActivation: real('max_activation'),
    meanActivation: real('mean_activation'),
    histogram: jsonb('histogram').$type<{ edges: number[]; counts: number[] }>(),
    label: text('label'),
    labelSource: text('label_source'),
  },
  (t) => [
    primaryKey({ columns: [t.dictionaryId, t.idx] }),
    index('features_density_idx').on(t.dictionaryId, t.density),
    index('features_max_activation_idx').on(t.dictionaryId, t.maxActivation),
    // Full-text search on labels (src/db/text-search.ts repeats this expression and predicate).
    index('features_label_text_idx')
      .using('gin', sql`to_tsvector('english', ${t.label})`)
      .where(sql`${t.label} IS NOT NULL`),
  ],
);

/** One decoder row per feature of `features` (written together at import, never updated). */
export const featureDecoders = pgTable(
  'feature_decoders',
  {
    // ON UPDATE: the `--replace` rename reaches these rows as it reaches features.
    dictionaryId: text('dictionary_id')
      .notNull()
      .references(() => dictionaries.id, { onDelete: 'cascade', onUpdate: 'cascade' }),
    idx: integer('idx').notNull(),
    decoder: anyVector('decoder').notNull(),
  },
  (t) => [primaryKey({ columns: [t.dictionaryId, t.idx] })],
);

/**
 * The contexts a dictionary's activation examples were taken from, each stored once per dictionary
 * (a build keeps tens of examples per feature but draws them from one corpus, so they share few
 * contexts). `context` is the example's key: the context's running number in the build's corpus, or
 * an import's own numbering. Replaced wholesale, with feature_examples, by each publish.
 */
export const exampleContexts = pgTable(
  'example_contexts',
  {
    dictionaryId: text('dictionary_id').notNull(),
    context: integer('context').notNull(),
    tokens: jsonb('tokens').$type<string[]>().notNull(),
    // Packed: 4 bytes a value, written by binary COPY (src/db/dashboards.ts) and read back as numbers.
    tokenIds: integer('token_ids').array().notNull(),
  },
  (t) => [primaryKey({ columns: [t.dictionaryId, t.context] })],
);

/**
 * A feature's activation examples of one kind in one row ('top': strongest first; 'quantile': band by
 * band, lowest first, then by rank). Arrays indexed by example: its context, quantile band, largest
 * activation and where it is, and how many (position, value) pairs it owns; `positions`/`values` hold
 * those pairs example after example. An example's per-token values are 0 except at its positions;
 * there are as many as its context has tokens.
 */
export const featureExamples = pgTable(
  'feature_examples',
  {
    dictionaryId: text('dictionary_id').notNull(),
    featureIdx: integer('feature_idx').notNull(),
    /** 'top' or 'quantile' */
    kind: text('kind').notNull(),
    contexts: integer('contexts').array().notNull(),
    /** Quantile band (0 = lowest) of each example; null for 'top'. */
    bands: integer('bands').array(),
    /** float4: PostgreSQL prints each as the shortest decimal that reads back as the same float32. */
    maxValues: real('max_values').array().notNull(),
    maxPositions: integer('max_positions').array().notNull(),
    counts: integer('counts').array().notNull(),
    positions: integer('positions').array().notNull(),
    values: real('values').array().notNull(),
  },
  (t) => [primaryKey({ columns: [t.dictionaryId, t.featureIdx, t.kind] })],
);

/**
 * A feature's logit lens in one row: the promoted tokens (highest weight first) and the suppressed
 * ones (lowest first), each as parallel arrays of token ids, texts and weights. No row before a build
 * or for models without an unembedding.
 */
export const featureLogits = pgTable(
  'feature_logits',
  {
    dictionaryId: text('dictionary_id').notNull(),
    featureIdx: integer('feature_idx').notNull(),
    positiveTokenIds: integer('positive_token_ids').array().notNull(),
    positiveTokens: jsonb('positive_tokens').$type<string[]>().notNull(),
    positiveWeights: real('positive_weights').array().notNull(),
    negativeTokenIds: integer('negative_token_ids').array().notNull(),
    negativeTokens: jsonb('negative_tokens').$type<string[]>().notNull(),
    negativeWeights: real('negative_weights').array().notNull(),
  },
  (t) => [primaryKey({ columns: [t.dictionaryId, t.featureIdx] })],
);

export const explanations = pgTable(
  'explanations',
  {
    id: serial('id').primaryKey(),
    dictionaryId: text('dictionary_id')
      .notNull()
      .references(() => dictionaries.id, { onDelete: 'cascade' }),
    featureIdx: integer('feature_idx').notNull(),
    text: text('text').notNull(),
    source: text('source').notNull(),
    author: text('author'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('explanations_feature_idx').on(t.dictionaryId, t.featureIdx),
    index('explanations_text_idx').using('gin', sql`to_tsvector('english', ${t.text})`),
  ],
);

export const apiKeys = pgTable(
  'api_keys',
  {
    id: serial('id').primaryKey(),
    name: text('name').notNull(),
    /** sha256 of the key; the key itself is shown once and never stored. */
    keyHash: text('key_hash').notNull(),
    prefix: text('prefix').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('api_keys_hash_idx').on(t.keyHash)],
);

/** A dictionary's 2-D feature map (src/engine/map/layout.ts), replaced wholesale by each `atlas map`. */
export const featureMaps = pgTable('feature_maps', {
  dictionaryId: text('dictionary_id')
    .primaryKey()
    .references(() => dictionaries.id, { onDelete: 'cascade' }),
  minX: real('min_x').notNull(),
  maxX: real('max_x').notNull(),
  minY: real('min_y').notNull(),
  maxY: real('max_y').notNull(),
  /** How it was laid out: neighbours, epochs, seed, seconds. */
  params: jsonb('params').$type<Record<string, number>>().notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

export const featureMapPoints = pgTable(
  'feature_map_points',
  {
    dictionaryId: text('dictionary_id')
      .notNull()
      .references(() => featureMaps.dictionaryId, { onDelete: 'cascade' }),
    idx: integer('idx').notNull(),
    x: real('x').notNull(),
    y: real('y').notNull(),
  },
  (t) => [primaryKey({ columns: [t.dictionaryId, t.idx] })],
);

/** What a comparison found beyond the per-feature matches (src/engine/compare/compare.ts). */
export interface ComparisonSummary {
  meanMaxAB: number;
  meanMaxBA: number;
  /** Histograms of A's best-match cosines in B and of B's in A. */
  histogramAB: { edges: number[]; counts: number[] };
  histogramBA: { edges: number[]; counts: number[] };
  /** PW-MCC and how many features the exact step paired; null unless the widths are equal. */
  oneToOne: { score: number; leftover: number } | null;
  seconds: number;
}

/** One stored comparison of dictionaries A and B; asking for (B, A) reads the same row. */
export const comparisons = pgTable(
  'comparisons',
  {
    id: serial('id').primaryKey(),
    dictionaryA: text('dictionary_a')
      .notNull()
      .references(() => dictionaries.id, { onDelete: 'cascade' }),
    dictionaryB: text('dictionary_b')
      .notNull()
      .references(() => dictionaries.id, { onDelete: 'cascade' }),
    summary: jsonb('summary').$type<ComparisonSummary>().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('comparisons_pair_idx').on(t.dictionaryA, t.dictionaryB)],
);

/**
 * For every feature of both dictionaries of a comparison, its best match in the other one and, for
 * equally wide dictionaries, its one-to-one partner.
 */
export const featureMatches = pgTable(
  'feature_matches',
  {
    comparisonId: integer('comparison_id')
      .notNull()
      .references(() => comparisons.id, { onDelete: 'cascade' }),
    dictionaryId: text('dictionary_id').notNull(),
    idx: integer('idx').notNull(),
    otherDictionaryId: text('other_dictionary_id').notNull(),
    matchIdx: integer('match_idx').notNull(),
    cosine: real('cosine').notNull(),
    pairedIdx: integer('paired_idx'),
    pairedCosine: real('paired_cosine'),
  },
  (t) => [
    primaryKey({ columns: [t.comparisonId, t.dictionaryId, t.idx] }),
    // "Related in other dictionaries" of one feature.
    index('feature_matches_feature_idx').on(t.dictionaryId, t.idx),
    // Families: the features of a wider dictionary whose best match is a given feature.
    index('feature_matches_family_idx').on(t.dictionaryId, t.otherDictionaryId, t.matchIdx),
    index('feature_matches_cosine_idx').on(t.comparisonId, t.dictionaryId, t.cosine),
  ],
);

/**
 * Co-activation of a feature family's pairs on the corpus of the build that built both dictionaries
 * together: tokens where both the parent (narrower dictionary) and the child (wider one, same model
 * and hook) fire, and tokens where the parent fires. Replaced for every dictionary a build publishes,
 * so a row always describes the last build of both.
 */
export const coActivations = pgTable(
  'co_activations',
  {
    parentDictionaryId: text('parent_dictionary_id')
      .notNull()
      .references(() => dictionaries.id, { onDelete: 'cascade' }),
    parentIdx: integer('parent_idx').notNull(),
    childDictionaryId: text('child_dictionary_id')
      .notNull()
      .references(() => dictionaries.id, { onDelete: 'cascade' }),
    childIdx: integer('child_idx').notNull(),
    bothTokens: doublePrecision('both_tokens').notNull(),
    parentTokens: doublePrecision('parent_tokens').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.childDictionaryId, t.childIdx, t.parentDictionaryId, t.parentIdx] }),
    // Publishing and cascades find a dictionary's rows from the parent side too.
    index('co_activations_parent_idx').on(t.parentDictionaryId),
  ],
);

/** Content-addressed files on PostgreSQL (src/db/artifacts.ts); a blob row exists once all its chunks do. */
export const artifactBlobs = pgTable('artifact_blobs', {
  sha256: text('sha256').primaryKey(),
  size: bigint('size', { mode: 'number' }).notNull(),
  chunks: integer('chunks').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

export const artifactChunks = pgTable(
  'artifact_chunks',
  {
    sha256: text('sha256').notNull(),
    seq: integer('seq').notNull(),
    data: bytea('data').notNull(),
  },
  (t) => [primaryKey({ columns: [t.sha256, t.seq] })],
);
