-- usage_tracker 0.1.0 -> 0.2.0
-- Each backend now keeps a copy of the price catalog; a statement trigger on
-- model_prices invalidates the copies on any change (src/pricing.rs).
-- JIT is off in every function body (reads on a large log paid seconds of
-- compilation for millisecond queries).

CREATE FUNCTION usage_tracker_private."model_prices_changed"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'model_prices_changed_wrapper';
ALTER FUNCTION usage_tracker_private.model_prices_changed() SET plan_cache_mode = force_generic_plan;
REVOKE ALL ON FUNCTION usage_tracker_private.model_prices_changed() FROM PUBLIC, anon;

CREATE TRIGGER model_prices_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.model_prices
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.model_prices_changed();

DO $jit$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'usage_tracker_private'
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET jit = off', f);
    END LOOP;
END
$jit$;
