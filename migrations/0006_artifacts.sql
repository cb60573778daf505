CREATE TABLE "artifact_blobs" (
	"sha256" text PRIMARY KEY NOT NULL,
	"size" bigint NOT NULL,
	"chunks" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "artifact_chunks" (
	"sha256" text NOT NULL,
	"seq" integer NOT NULL,
	"data" "bytea" NOT NULL,
	CONSTRAINT "artifact_chunks_sha256_seq_pk" PRIMARY KEY("sha256","seq")
);
--> statement-breakpoint
ALTER TABLE "features" DROP CONSTRAINT "features_dictionary_id_dictionaries_id_fk";
--> statement-breakpoint
ALTER TABLE "dictionaries" ADD COLUMN "artifacts" jsonb;--> statement-breakpoint
ALTER TABLE "models" ADD COLUMN "artifacts" jsonb;--> statement-breakpoint
ALTER TABLE "features" ADD CONSTRAINT "features_dictionary_id_dictionaries_id_fk" FOREIGN KEY ("dictionary_id") REFERENCES "public"."dictionaries"("id") ON DELETE cascade ON UPDATE cascade;--> statement-breakpoint
-- Weights barely compress; storing chunks uncompressed saves the CPU of trying on every write.
ALTER TABLE "artifact_chunks" ALTER COLUMN "data" SET STORAGE EXTERNAL;
