-- pgvector must exist before the features.decoder column; idempotent on both backends.
CREATE EXTENSION IF NOT EXISTS vector;--> statement-breakpoint
CREATE TABLE "activation_examples" (
	"id" serial PRIMARY KEY NOT NULL,
	"dictionary_id" text NOT NULL,
	"feature_idx" integer NOT NULL,
	"kind" text NOT NULL,
	"band" integer,
	"rank" integer NOT NULL,
	"tokens" jsonb NOT NULL,
	"token_ids" jsonb NOT NULL,
	"values" jsonb NOT NULL,
	"max_value" real NOT NULL,
	"max_position" integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE "api_keys" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"key_hash" text NOT NULL,
	"prefix" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "dictionaries" (
	"id" text PRIMARY KEY NOT NULL,
	"model_id" text NOT NULL,
	"name" text NOT NULL,
	"hook_point" text NOT NULL,
	"d_in" integer NOT NULL,
	"d_sae" integer NOT NULL,
	"architecture" text NOT NULL,
	"k" integer,
	"params" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"source_format" text NOT NULL,
	"source_path" text,
	"weights_path" text,
	"state" text DEFAULT 'importing' NOT NULL,
	"stats" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "explanations" (
	"id" serial PRIMARY KEY NOT NULL,
	"dictionary_id" text NOT NULL,
	"feature_idx" integer NOT NULL,
	"text" text NOT NULL,
	"source" text NOT NULL,
	"author" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "features" (
	"dictionary_id" text NOT NULL,
	"idx" integer NOT NULL,
	"decoder" vector NOT NULL,
	"decoder_norm" real NOT NULL,
	"density" real,
	"max_activation" real,
	"mean_activation" real,
	"histogram" jsonb,
	"label" text,
	"label_source" text,
	CONSTRAINT "features_dictionary_id_idx_pk" PRIMARY KEY("dictionary_id","idx")
);
--> statement-breakpoint
CREATE TABLE "logit_tokens" (
	"dictionary_id" text NOT NULL,
	"feature_idx" integer NOT NULL,
	"sign" text NOT NULL,
	"rank" integer NOT NULL,
	"token_id" integer NOT NULL,
	"token" text NOT NULL,
	"weight" real NOT NULL,
	CONSTRAINT "logit_tokens_dictionary_id_feature_idx_sign_rank_pk" PRIMARY KEY("dictionary_id","feature_idx","sign","rank")
);
--> statement-breakpoint
CREATE TABLE "models" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"architecture" text NOT NULL,
	"d_model" integer NOT NULL,
	"n_layers" integer NOT NULL,
	"vocab_size" integer NOT NULL,
	"context_length" integer NOT NULL,
	"prepend_bos" boolean NOT NULL,
	"hook_points" jsonb NOT NULL,
	"source_path" text NOT NULL,
	"source_format" text NOT NULL,
	"tokenizer_path" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "dictionaries" ADD CONSTRAINT "dictionaries_model_id_models_id_fk" FOREIGN KEY ("model_id") REFERENCES "public"."models"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "explanations" ADD CONSTRAINT "explanations_dictionary_id_dictionaries_id_fk" FOREIGN KEY ("dictionary_id") REFERENCES "public"."dictionaries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "features" ADD CONSTRAINT "features_dictionary_id_dictionaries_id_fk" FOREIGN KEY ("dictionary_id") REFERENCES "public"."dictionaries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "activation_examples_feature_idx" ON "activation_examples" USING btree ("dictionary_id","feature_idx","kind");--> statement-breakpoint
CREATE UNIQUE INDEX "api_keys_hash_idx" ON "api_keys" USING btree ("key_hash");--> statement-breakpoint
CREATE INDEX "dictionaries_model_idx" ON "dictionaries" USING btree ("model_id");--> statement-breakpoint
CREATE INDEX "explanations_feature_idx" ON "explanations" USING btree ("dictionary_id","feature_idx");--> statement-breakpoint
CREATE INDEX "features_density_idx" ON "features" USING btree ("dictionary_id","density");--> statement-breakpoint
CREATE INDEX "features_max_activation_idx" ON "features" USING btree ("dictionary_id","max_activation");