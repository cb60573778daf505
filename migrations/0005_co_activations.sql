CREATE TABLE "co_activations" (
	"parent_dictionary_id" text NOT NULL,
	"parent_idx" integer NOT NULL,
	"child_dictionary_id" text NOT NULL,
	"child_idx" integer NOT NULL,
	"both_tokens" double precision NOT NULL,
	"parent_tokens" double precision NOT NULL,
	CONSTRAINT "co_activations_child_dictionary_id_child_idx_parent_dictionary_id_parent_idx_pk" PRIMARY KEY("child_dictionary_id","child_idx","parent_dictionary_id","parent_idx")
);
--> statement-breakpoint
ALTER TABLE "co_activations" ADD CONSTRAINT "co_activations_parent_dictionary_id_dictionaries_id_fk" FOREIGN KEY ("parent_dictionary_id") REFERENCES "public"."dictionaries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "co_activations" ADD CONSTRAINT "co_activations_child_dictionary_id_dictionaries_id_fk" FOREIGN KEY ("child_dictionary_id") REFERENCES "public"."dictionaries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "co_activations_parent_idx" ON "co_activations" USING btree ("parent_dictionary_id");