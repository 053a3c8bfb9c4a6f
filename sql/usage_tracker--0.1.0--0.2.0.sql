-- usage_tracker 0.1.0 -> 0.2.0
-- Each backend now keeps a copy of the price catalog and of which
-- organizations have budgets; statement triggers on model_prices and budgets
-- invalidate the copies on any change (src/relcache.rs).
-- JIT is off in every function body (reads on a large log paid seconds of
-- compilation for millisecond queries) but log_ai_usage, which keeps only
-- search_path. log_ai_usage inserts straight into the month's partition and
-- no longer asks the budgets table on every call.

CREATE FUNCTION usage_tracker_private."cached_table_changed"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'cached_table_changed_wrapper';
ALTER FUNCTION usage_tracker_private.cached_table_changed() SET plan_cache_mode = force_generic_plan;
REVOKE ALL ON FUNCTION usage_tracker_private.cached_table_changed() FROM PUBLIC, anon;

CREATE TRIGGER model_prices_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.model_prices
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();
CREATE TRIGGER budgets_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.budgets
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();

DO $jit$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'usage_tracker_private' AND p.proname <> 'log_ai_usage'
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET jit = off', f);
    END LOOP;
    -- The ingest path keeps only search_path (one setting fewer to set and
    -- restore on every call).
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'usage_tracker_private' AND p.proname = 'log_ai_usage'
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s RESET plan_cache_mode', f);
    END LOOP;
END
$jit$;
