-- Per-token values and token ids of activation examples as packed float4[]/int4[] instead of jsonb.
-- A jsonb array of numbers prints as "[1.5, 2, ...]", which with brackets turned to braces is the
-- array literal of the same numbers.
ALTER TABLE "activation_examples" ALTER COLUMN "token_ids" SET DATA TYPE integer[] USING translate("token_ids"::text, '[]', '{}')::integer[];--> statement-breakpoint
ALTER TABLE "activation_examples" ALTER COLUMN "values" SET DATA TYPE real[] USING translate("values"::text, '[]', '{}')::real[];
