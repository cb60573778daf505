DROP TABLE "activation_examples" CASCADE;--> statement-breakpoint
DROP TABLE "logit_tokens" CASCADE;