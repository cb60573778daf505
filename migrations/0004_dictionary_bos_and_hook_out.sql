ALTER TABLE "dictionaries" ADD COLUMN "hook_point_out" text;--> statement-breakpoint
ALTER TABLE "dictionaries" ADD COLUMN "prepend_bos" boolean;--> statement-breakpoint
UPDATE "dictionaries" SET "prepend_bos" = "models"."prepend_bos" FROM "models" WHERE "models"."id" = "dictionaries"."model_id";--> statement-breakpoint
ALTER TABLE "dictionaries" ALTER COLUMN "prepend_bos" SET NOT NULL;
