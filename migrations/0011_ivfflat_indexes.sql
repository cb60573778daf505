-- Dictionaries of up to 262,144 features get an IVFFlat index instead of HNSW (src/db/vector-index.ts:
-- 7-9x faster to build, equal recall at their size). Each such existing HNSW index is rebuilt as
-- IVFFlat under the same name, expression and predicate, with lists = ceil(sqrt(d_sae)). The size bound
-- is written out here as it stood when this migration was made.
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT i.indexname, i.indexdef, d.d_sae FROM pg_indexes i
		JOIN dictionaries d ON i.indexdef LIKE '%(dictionary_id = ' || quote_literal(d.id) || '::text)%'
		WHERE i.schemaname = 'public' AND i.tablename = 'feature_decoders' AND i.indexdef LIKE '% USING hnsw %'
			AND d.d_sae <= 262144
	LOOP
		EXECUTE format('DROP INDEX %I', r.indexname);
		EXECUTE replace(replace(r.indexdef, ' USING hnsw ', ' USING ivfflat '), ' WHERE ',
			format(' WITH (lists = %s) WHERE ', ceil(sqrt(r.d_sae))::int));
	END LOOP;
END $$;
