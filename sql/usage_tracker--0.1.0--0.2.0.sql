-- usage_tracker 0.1.0 -> 0.2.0
-- Each backend now keeps a copy of the price catalog; a statement trigger on
-- model_prices invalidates the copies on any change (src/pricing.rs).

CREATE FUNCTION usage_tracker_private."model_prices_changed"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'model_prices_changed_wrapper';
ALTER FUNCTION usage_tracker_private.model_prices_changed() SET plan_cache_mode = force_generic_plan;
REVOKE ALL ON FUNCTION usage_tracker_private.model_prices_changed() FROM PUBLIC, anon;

CREATE TRIGGER model_prices_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.model_prices
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.model_prices_changed();
