CREATE TABLE "comparisons" (
	"id" serial PRIMARY KEY NOT NULL,
	"dictionary_a" text NOT NULL,
	"dictionary_b" text NOT NULL,
	"summary" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "feature_map_points" (
	"dictionary_id" text NOT NULL,
	"idx" integer NOT NULL,
	"x" real NOT NULL,
	"y" real NOT NULL,
	CONSTRAINT "feature_map_points_dictionary_id_idx_pk" PRIMARY KEY("dictionary_id","idx")
);
--> statement-breakpoint
CREATE TABLE "feature_maps" (
	"dictionary_id" text PRIMARY KEY NOT NULL,
	"min_x" real NOT NULL,
	"max_x" real NOT NULL,
	"min_y" real NOT NULL,
	"max_y" real NOT NULL,
	"params" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "feature_matches" (
	"comparison_id" integer NOT NULL,
	"dictionary_id" text NOT NULL,
	"idx" integer NOT NULL,
	"other_dictionary_id" text NOT NULL,
	"match_idx" integer NOT NULL,
	"cosine" real NOT NULL,
	"paired_idx" integer,
	"paired_cosine" real,
	CONSTRAINT "feature_matches_comparison_id_dictionary_id_idx_pk" PRIMARY KEY("comparison_id","dictionary_id","idx")
);
--> statement-breakpoint
ALTER TABLE "comparisons" ADD CONSTRAINT "comparisons_dictionary_a_dictionaries_id_fk" FOREIGN KEY ("dictionary_a") REFERENCES "public"."dictionaries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "comparisons" ADD CONSTRAINT "comparisons_dictionary_b_dictionaries_id_fk" FOREIGN KEY ("dictionary_b") REFERENCES "public"."dictionaries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "feature_map_points" ADD CONSTRAINT "feature_map_points_dictionary_id_feature_maps_dictionary_id_fk" FOREIGN KEY ("dictionary_id") REFERENCES "public"."feature_maps"("dictionary_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "feature_maps" ADD CONSTRAINT "feature_maps_dictionary_id_dictionaries_id_fk" FOREIGN KEY ("dictionary_id") REFERENCES "public"."dictionaries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "feature_matches" ADD CONSTRAINT "feature_matches_comparison_id_comparisons_id_fk" FOREIGN KEY ("comparison_id") REFERENCES "public"."comparisons"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "comparisons_pair_idx" ON "comparisons" USING btree ("dictionary_a","dictionary_b");--> statement-breakpoint
CREATE INDEX "feature_matches_feature_idx" ON "feature_matches" USING btree ("dictionary_id","idx");--> statement-breakpoint
CREATE INDEX "feature_matches_family_idx" ON "feature_matches" USING btree ("dictionary_id","other_dictionary_id","match_idx");--> statement-breakpoint
CREATE INDEX "feature_matches_cosine_idx" ON "feature_matches" USING btree ("comparison_id","dictionary_id","cosine");