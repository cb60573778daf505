-- Decoder vectors move out of features into feature_decoders, so that the statistics `atlas build`
-- rewrites (indexed columns, hence non-HOT updates) no longer insert every updated row into the
-- dictionary's HNSW index again. Each per-dictionary HNSW index (src/db/vector-index.ts) is rebuilt
-- on the new table under the same name, expression and predicate, with the server's
-- maintenance_work_mem.
CREATE TABLE "feature_decoders" (
	"dictionary_id" text NOT NULL,
	"idx" integer NOT NULL,
	"decoder" vector NOT NULL,
	CONSTRAINT "feature_decoders_dictionary_id_idx_pk" PRIMARY KEY("dictionary_id","idx")
);
--> statement-breakpoint
INSERT INTO "feature_decoders" ("dictionary_id", "idx", "decoder") SELECT "dictionary_id", "idx", "decoder" FROM "features";--> statement-breakpoint
ALTER TABLE "feature_decoders" ADD CONSTRAINT "feature_decoders_dictionary_id_dictionaries_id_fk" FOREIGN KEY ("dictionary_id") REFERENCES "public"."dictionaries"("id") ON DELETE cascade ON UPDATE cascade;--> statement-breakpoint
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT indexname, indexdef FROM pg_indexes
		WHERE schemaname = 'public' AND tablename = 'features' AND indexdef LIKE '% USING hnsw %'
	LOOP
		EXECUTE format('DROP INDEX %I', r.indexname);
		EXECUTE regexp_replace(r.indexdef, ' ON (\S+\.)?features USING ', ' ON \1feature_decoders USING ');
	END LOOP;
END $$;
--> statement-breakpoint
ALTER TABLE "features" DROP COLUMN "decoder";
