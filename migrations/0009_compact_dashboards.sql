CREATE TABLE "example_contexts" (
	"dictionary_id" text NOT NULL,
	"context" integer NOT NULL,
	"tokens" jsonb NOT NULL,
	"token_ids" integer[] NOT NULL,
	CONSTRAINT "example_contexts_dictionary_id_context_pk" PRIMARY KEY("dictionary_id","context")
);
--> statement-breakpoint
CREATE TABLE "feature_examples" (
	"dictionary_id" text NOT NULL,
	"feature_idx" integer NOT NULL,
	"kind" text NOT NULL,
	"contexts" integer[] NOT NULL,
	"bands" integer[],
	"max_values" real[] NOT NULL,
	"max_positions" integer[] NOT NULL,
	"counts" integer[] NOT NULL,
	"positions" integer[] NOT NULL,
	"values" real[] NOT NULL,
	CONSTRAINT "feature_examples_dictionary_id_feature_idx_kind_pk" PRIMARY KEY("dictionary_id","feature_idx","kind")
);
--> statement-breakpoint
CREATE TABLE "feature_logits" (
	"dictionary_id" text NOT NULL,
	"feature_idx" integer NOT NULL,
	"positive_token_ids" integer[] NOT NULL,
	"positive_tokens" jsonb NOT NULL,
	"positive_weights" real[] NOT NULL,
	"negative_token_ids" integer[] NOT NULL,
	"negative_tokens" jsonb NOT NULL,
	"negative_weights" real[] NOT NULL,
	CONSTRAINT "feature_logits_dictionary_id_feature_idx_pk" PRIMARY KEY("dictionary_id","feature_idx")
);
--> statement-breakpoint
-- Examples stored a row each (activation_examples) move to the layout above: each distinct context
-- (token ids and texts) of a dictionary once, numbered from 0 in the order of its first example; a
-- feature's examples of a kind in one row, in the order readers listed them (band, then rank); an
-- example's per-token values become the (position, value) pairs where they are nonzero (positions
-- count from 0).
CREATE AGGREGATE atlas_array_cat_agg(anycompatiblearray) (SFUNC = array_cat, STYPE = anycompatiblearray);
--> statement-breakpoint
INSERT INTO "example_contexts" ("dictionary_id", "context", "tokens", "token_ids")
SELECT "dictionary_id", (row_number() OVER (PARTITION BY "dictionary_id" ORDER BY min("id")) - 1)::int, "tokens",
  "token_ids"
FROM "activation_examples" GROUP BY "dictionary_id", "tokens", "token_ids";
--> statement-breakpoint
INSERT INTO "feature_examples" ("dictionary_id", "feature_idx", "kind", "contexts", "bands", "max_values",
  "max_positions", "counts", "positions", "values")
SELECT a."dictionary_id", a."feature_idx", a."kind",
  array_agg(c."context" ORDER BY a."band" NULLS FIRST, a."rank", a."id"),
  CASE WHEN a."kind" = 'quantile' THEN array_agg(a."band" ORDER BY a."band" NULLS FIRST, a."rank", a."id") END,
  array_agg(a."max_value" ORDER BY a."band" NULLS FIRST, a."rank", a."id"),
  array_agg(a."max_position" ORDER BY a."band" NULLS FIRST, a."rank", a."id"),
  array_agg(s.n ORDER BY a."band" NULLS FIRST, a."rank", a."id"),
  atlas_array_cat_agg(s.positions ORDER BY a."band" NULLS FIRST, a."rank", a."id"),
  atlas_array_cat_agg(s.vals ORDER BY a."band" NULLS FIRST, a."rank", a."id")
FROM "activation_examples" a
JOIN "example_contexts" c ON c."dictionary_id" = a."dictionary_id" AND c."tokens" = a."tokens"
  AND c."token_ids" = a."token_ids"
CROSS JOIN LATERAL (
  SELECT count(*)::int AS n, COALESCE(array_agg((u.i - 1)::int ORDER BY u.i), '{}') AS positions,
    COALESCE(array_agg(u.v ORDER BY u.i), '{}') AS vals
  FROM unnest(a."values") WITH ORDINALITY u(v, i) WHERE u.v <> 0
) s
GROUP BY a."dictionary_id", a."feature_idx", a."kind";
--> statement-breakpoint
DROP AGGREGATE atlas_array_cat_agg(anycompatiblearray);
--> statement-breakpoint
-- Logit tokens stored a row each (logit_tokens) move to one row per feature, each sign in rank order.
INSERT INTO "feature_logits" ("dictionary_id", "feature_idx", "positive_token_ids", "positive_tokens",
  "positive_weights", "negative_token_ids", "negative_tokens", "negative_weights")
SELECT "dictionary_id", "feature_idx",
  COALESCE(array_agg("token_id" ORDER BY "rank") FILTER (WHERE "sign" = 'positive'), '{}'),
  COALESCE(jsonb_agg("token" ORDER BY "rank") FILTER (WHERE "sign" = 'positive'), '[]'),
  COALESCE(array_agg("weight" ORDER BY "rank") FILTER (WHERE "sign" = 'positive'), '{}'),
  COALESCE(array_agg("token_id" ORDER BY "rank") FILTER (WHERE "sign" = 'negative'), '{}'),
  COALESCE(jsonb_agg("token" ORDER BY "rank") FILTER (WHERE "sign" = 'negative'), '[]'),
  COALESCE(array_agg("weight" ORDER BY "rank") FILTER (WHERE "sign" = 'negative'), '{}')
FROM "logit_tokens" GROUP BY "dictionary_id", "feature_idx";
