-- usage_tracker 0.2.0 -> 0.3.0: hardening against adversarial tenants, and
-- defaults that never surprise with money or limits.
-- * Idempotency keys remember a digest of the first call's payload: a retry
--   with another payload is refused (23505) instead of returning the first id.
-- * Rollup token and latency sums are numeric: one organization's busy day
--   cannot overflow the shared fold.
-- * Report runs: a per-user plan limit (report_runs_per_user, 50 on the
--   shipped plans) that users cannot raise; monthly reads per organization.
-- * usage_compare_organizations counts are numeric; usage_tracker.limits()
--   lists every documented limit.
-- * Privileges are revoked from every API role, not only PUBLIC and anon
--   (a database's default privileges could grant TRUNCATE on the log), also
--   on existing log partitions.
-- * A price without cache or reasoning rates is no price for those buckets
--   (NULL), never the input or output rate; logged rows record unpriced
--   buckets, which list_unknown_models shows.
-- * Limits can count the AI log (set_limit_source). ai_tokens counts both
--   events and logged AI requests on new installs; an updated database keeps
--   counting events only (limit_settings), as 0.2.0 did: switch with
--   SELECT usage_tracker.set_limit_source('ai_tokens', 'both').
-- * create_plan takes p_base_plan for the limits it does not list.
-- * Quota period rows and budget spend are spread over 16 slots.
-- * Batches: log_ai_usage_batch and track_usage_events (up to 10,000 events).
-- * The fold is bounded (usage_tracker.fold_batch_rows) and reports its lag
--   (run_maintenance, rollup_lag).
-- * log_ai_usage and track_usage_event are C invoker wrappers (no SQL body
--   for the planner to inline on every call of the simple query protocol).

ALTER TABLE usage_tracker_private.ai_usage_idempotency ADD COLUMN payload_digest bytea;
COMMENT ON COLUMN usage_tracker_private.ai_usage_idempotency.payload_digest IS 'SHA-256 (first 16 bytes) of what the first call sent; a retry with the same key and a different payload is refused (23505). NULL for keys recorded before 0.3.0 (any payload matches)';

ALTER TABLE usage_tracker.ai_usage_hourly
    ALTER COLUMN input_tokens TYPE numeric, ALTER COLUMN output_tokens TYPE numeric,
    ALTER COLUMN cache_read_tokens TYPE numeric, ALTER COLUMN cache_write_tokens TYPE numeric,
    ALTER COLUMN reasoning_tokens TYPE numeric, ALTER COLUMN total_tokens TYPE numeric,
    ALTER COLUMN latency_sum TYPE numeric;
ALTER TABLE usage_tracker.ai_usage_daily
    ALTER COLUMN input_tokens TYPE numeric, ALTER COLUMN output_tokens TYPE numeric,
    ALTER COLUMN cache_read_tokens TYPE numeric, ALTER COLUMN cache_write_tokens TYPE numeric,
    ALTER COLUMN reasoning_tokens TYPE numeric, ALTER COLUMN total_tokens TYPE numeric,
    ALTER COLUMN latency_sum TYPE numeric;
ALTER TABLE usage_tracker.ai_usage_user_hourly
    ALTER COLUMN input_tokens TYPE numeric, ALTER COLUMN output_tokens TYPE numeric,
    ALTER COLUMN total_tokens TYPE numeric, ALTER COLUMN latency_sum TYPE numeric;
ALTER TABLE usage_tracker.ai_usage_user_daily
    ALTER COLUMN input_tokens TYPE numeric, ALTER COLUMN output_tokens TYPE numeric,
    ALTER COLUMN total_tokens TYPE numeric, ALTER COLUMN latency_sum TYPE numeric;
ALTER TABLE usage_tracker.ai_usage_customer_hourly ALTER COLUMN total_tokens TYPE numeric;
ALTER TABLE usage_tracker.ai_usage_customer_daily ALTER COLUMN total_tokens TYPE numeric;

-- Period rows and budget spend spread over 16 slots (one busy organization's
-- writers no longer queue on one row); alerts are their own record.
ALTER TABLE usage_tracker_private.quota_usage ADD COLUMN slot smallint NOT NULL DEFAULT 0;
ALTER TABLE usage_tracker_private.quota_usage DROP CONSTRAINT quota_usage_pkey,
    ADD CONSTRAINT quota_usage_pkey PRIMARY KEY (org_id, limit_key, period_start, slot);
INSERT INTO usage_tracker_private.quota_usage (org_id, limit_key, period_start, period_end, slot, used)
SELECT q.org_id, q.limit_key, q.period_start, q.period_end, s, 0
  FROM usage_tracker_private.quota_usage q, pg_catalog.generate_series(1, 15) AS s;
COMMENT ON TABLE usage_tracker_private.quota_usage IS
    'Used quantity per organization, limit and billing period (period_start -infinity for total limits), spread over 16 slots (the period''s usage is their sum): writers add to their backend''s slot, decisions lock them all; internal to the quota functions';
COMMENT ON COLUMN usage_tracker_private.quota_usage.used IS 'Quantity recorded in the period, in this slot (slot 0 also holds what the period started from)';
COMMENT ON COLUMN usage_tracker_private.quota_usage.slot IS 'Slot 0..15; one busy organization''s writers spread over them';
ALTER TABLE usage_tracker_private.budget_spend ADD COLUMN slot smallint NOT NULL DEFAULT 0, DROP COLUMN alerted_pct;
ALTER TABLE usage_tracker_private.budget_spend DROP CONSTRAINT budget_spend_pkey,
    ADD CONSTRAINT budget_spend_pkey PRIMARY KEY (org_id, budget_id, period_start, slot);
INSERT INTO usage_tracker_private.budget_spend (org_id, budget_id, period_start, slot, spent_usd)
SELECT b.org_id, b.budget_id, b.period_start, s, 0
  FROM usage_tracker_private.budget_spend b, pg_catalog.generate_series(1, 15) AS s;
COMMENT ON TABLE usage_tracker_private.budget_spend IS
    'Spend per budget and billing period, spread over 16 slots (the spend is their sum: a busy organization''s requests do not queue on one row); the thresholds alerted are the budget_alerts rows, whose unique key makes each alert fire once';
COMMENT ON COLUMN usage_tracker_private.budget_spend.slot IS 'Slot 0..15 (slot 0 also holds what the period started from)';

-- The fold records marks (sequence position, time) to bound its lag.
ALTER TABLE usage_tracker_private.rollup_progress ADD COLUMN marks_seq bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN marks_at timestamptz[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN usage_tracker_private.rollup_progress.marks_seq IS 'Positions of ingest_seq read by recent passes (ascending); any row numbered above a mark was written after its time, which bounds the fold lag';
COMMENT ON COLUMN usage_tracker_private.rollup_progress.marks_at IS 'When each position in marks_seq was read';

-- Prices: a bucket without a rate; log rows: the buckets left unpriced.
ALTER TABLE usage_tracker.model_prices ALTER COLUMN cache_read_usd_per_mtok DROP NOT NULL,
    ALTER COLUMN cache_write_usd_per_mtok DROP NOT NULL, ALTER COLUMN reasoning_usd_per_mtok DROP NOT NULL;
COMMENT ON TABLE usage_tracker.model_prices IS
    'Model price catalog, in USD per million tokens. The price in force for an event is the row of the provider given (or, without one, of the model''s default provider: the one that priced it first, lowest price_id) with the latest effective_from not after the event (and the highest price_id among equal effective_from). Rows are never updated: set_model_price adds a version.';
COMMENT ON COLUMN usage_tracker.model_prices.cache_read_usd_per_mtok IS 'USD per million input tokens read from the provider''s prompt cache; NULL: no price (such tokens cost nothing and are listed by list_unknown_models, never charged at another rate)';
COMMENT ON COLUMN usage_tracker.model_prices.cache_write_usd_per_mtok IS 'USD per million input tokens written to the provider''s prompt cache; NULL: no price (see cache_read_usd_per_mtok)';
COMMENT ON COLUMN usage_tracker.model_prices.reasoning_usd_per_mtok IS 'USD per million reasoning (thinking) tokens; NULL: no price (see cache_read_usd_per_mtok)';
ALTER TABLE usage_tracker.ai_usage_log ADD COLUMN unpriced_buckets text[];
COMMENT ON COLUMN usage_tracker.ai_usage_log.unpriced_buckets IS 'Token buckets with tokens but no rate in the price version used (cache_read, cache_write, reasoning): they cost nothing here; list_unknown_models shows them. NULL when everything was priced';
DO $unpriced$
DECLARE p record;
BEGIN
    FOR p IN SELECT c.relname FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'usage_tracker.ai_usage_log'::pg_catalog.regclass
    LOOP
        EXECUTE pg_catalog.format('DROP INDEX IF EXISTS usage_tracker_private.%I', p.relname || '_unpriced_idx');
        EXECUTE pg_catalog.format('CREATE INDEX %I ON usage_tracker_private.%I (model_used) '
                                  'WHERE price_id IS NULL OR unpriced_buckets IS NOT NULL',
                                  p.relname || '_unpriced_idx', p.relname);
    END LOOP;
END
$unpriced$;

-- Limits: per user (report runs) and fed by the AI log.
ALTER TABLE usage_tracker.limit_definitions ADD COLUMN per_user boolean NOT NULL DEFAULT false,
    ADD COLUMN source text NOT NULL DEFAULT 'events',
    ADD CONSTRAINT limit_definitions_source_check CHECK (source IN ('events', 'ai_log', 'both'));
COMMENT ON COLUMN usage_tracker.limit_definitions.per_user IS 'True for a limit per user rather than per organization (report_runs_per_user, enforced by start_report_run); quota checks skip it';
COMMENT ON COLUMN usage_tracker.limit_definitions.source IS 'What counts against the limit by default: events (usage events of its event types), ai_log (the tokens of logged AI requests, for limits on ai_tokens_input / ai_tokens_output) or both; limit_settings overrides it';
UPDATE usage_tracker.limit_definitions SET source = 'both' WHERE limit_key = 'ai_tokens' AND shipped;
INSERT INTO usage_tracker.limit_definitions (limit_key, event_types, unit, period, shipped, per_user) VALUES
    ('report_runs_per_user', '{report_run}', 'runs', 'billing_period', true, true);
INSERT INTO usage_tracker.plan_limits (plan, limit_key, max_quantity, shipped) VALUES
    ('trial', 'report_runs_per_user', 50, true), ('pilot', 'report_runs_per_user', 50, true),
    ('subscription', 'report_runs_per_user', 50, true);
CREATE TABLE usage_tracker.limit_settings (
    limit_key  text        NOT NULL,
    source     text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT limit_settings_pkey PRIMARY KEY (limit_key),
    CONSTRAINT limit_settings_limit_fkey FOREIGN KEY (limit_key) REFERENCES usage_tracker.limit_definitions (limit_key) ON DELETE CASCADE,
    CONSTRAINT limit_settings_source_check CHECK (source IN ('events', 'ai_log', 'both'))
);
COMMENT ON TABLE usage_tracker.limit_settings IS
    'Per-limit settings set with set_limit_source (service_role): what counts against the limit, overriding limit_definitions.source';
COMMENT ON COLUMN usage_tracker.limit_settings.limit_key IS 'Limit';
COMMENT ON COLUMN usage_tracker.limit_settings.source IS 'events, ai_log or both';
COMMENT ON COLUMN usage_tracker.limit_settings.updated_at IS 'When it was set';
ALTER TABLE usage_tracker.limit_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY limit_settings_select ON usage_tracker.limit_settings
    FOR SELECT TO authenticated, service_role USING (true);
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.limit_settings', '');
-- As 0.2.0 did: ai_tokens counts events only until the operator says otherwise.
INSERT INTO usage_tracker.limit_settings (limit_key, source)
SELECT 'ai_tokens', 'events' WHERE EXISTS (SELECT 1 FROM usage_tracker.limit_definitions WHERE limit_key = 'ai_tokens');

-- Per-backend copies of organizations, plans and limits (the ingest path).
CREATE TRIGGER organizations_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.organizations
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();
CREATE TRIGGER plans_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.plans
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();
CREATE TRIGGER plan_limits_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.plan_limits
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();
CREATE TRIGGER limit_definitions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.limit_definitions
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();
CREATE TRIGGER limit_settings_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_tracker.limit_settings
    FOR EACH STATEMENT EXECUTE FUNCTION usage_tracker_private.cached_table_changed();

-- New functions.
CREATE FUNCTION usage_tracker_private."limits"() RETURNS jsonb
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'limits_wrapper';
ALTER FUNCTION usage_tracker_private.limits() SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION usage_tracker_private.limits() SET jit = off;
CREATE FUNCTION usage_tracker.limits()
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.limits() $$;
COMMENT ON FUNCTION usage_tracker.limits IS
    'The documented limits of the API: largest tokens, quantities, prices and budgets, text lengths, day ranges, and the size and depth of each jsonb argument.';

CREATE FUNCTION usage_tracker_private."set_limit_source"(
	"p_limit_key" TEXT,
	"p_source" TEXT
) RETURNS TEXT
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_limit_source_wrapper';
ALTER FUNCTION usage_tracker_private.set_limit_source(TEXT, TEXT) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION usage_tracker_private.set_limit_source(TEXT, TEXT) SET jit = off;
CREATE FUNCTION usage_tracker.set_limit_source(p_limit_key text, p_source text)
RETURNS text LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.set_limit_source($1, $2) $$;
COMMENT ON FUNCTION usage_tracker.set_limit_source IS
    'What counts against a limit (service_role): events (usage events of its event types), ai_log (the tokens of requests logged with log_ai_usage; limits on ai_tokens_input / ai_tokens_output only) or both (ai_tokens'' default). Period rows are recomputed from history.';

CREATE FUNCTION usage_tracker_private."log_ai_usage_batch"(
	"p_events" jsonb
) RETURNS jsonb
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'log_ai_usage_batch_wrapper';
ALTER FUNCTION usage_tracker_private.log_ai_usage_batch(jsonb) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION usage_tracker_private.log_ai_usage_batch(jsonb) SET jit = off;
CREATE FUNCTION usage_tracker.log_ai_usage_batch(p_events jsonb)
RETURNS jsonb
LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'log_ai_usage_batch_invoker';
COMMENT ON FUNCTION usage_tracker.log_ai_usage_batch IS
    'Records up to 10,000 AI requests in one call and returns their ids as a JSON array in input order. p_events is a JSON array of objects whose keys are log_ai_usage''s parameter names without p_ (a missing key takes the parameter''s default). Same authorization, checks, prices, idempotency keys, limits and budgets as one log_ai_usage call per event; all or nothing: an invalid event rejects the batch with its usual SQLSTATE and a message naming it (events[i].key), and nothing is written.';

CREATE FUNCTION usage_tracker_private."track_usage_events"(
	"p_events" jsonb
) RETURNS jsonb
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'track_usage_events_wrapper';
ALTER FUNCTION usage_tracker_private.track_usage_events(jsonb) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION usage_tracker_private.track_usage_events(jsonb) SET jit = off;
CREATE FUNCTION usage_tracker.track_usage_events(p_events jsonb)
RETURNS jsonb LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'track_usage_events_invoker';
COMMENT ON FUNCTION usage_tracker.track_usage_events IS
    'Records up to 10,000 usage events in one call and returns their ids as a JSON array in input order. p_events is a JSON array of objects with track_usage_event''s parameter names without p_ (org_id, event_type, quantity, metadata, occurred_at; a missing key takes the default). The daily counters and period rows are updated once per organization, type and period. All or nothing: an invalid event rejects the batch with its usual SQLSTATE and a message naming it (events[i].key).';

CREATE FUNCTION usage_tracker_private."rollup_lag"() RETURNS jsonb
STRICT STABLE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'rollup_lag_wrapper';
ALTER FUNCTION usage_tracker_private.rollup_lag() SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION usage_tracker_private.rollup_lag() SET jit = off;
CREATE FUNCTION usage_tracker.rollup_lag()
RETURNS jsonb LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.rollup_lag() $$;
COMMENT ON FUNCTION usage_tracker.rollup_lag IS
    'How far the rollups are behind the log, for monitoring: rows_waiting (at most), lag_seconds (age of the oldest unfolded row, at most; 0 when nothing waits), folded_through, last_fold_at (service_role). Reads stay exact whatever the lag: they add the unfolded rows.';

-- The ingest functions' wrappers are C invoker functions (log_ai_usage_invoker, ...).
DROP FUNCTION usage_tracker.log_ai_usage(uuid, text, bigint, text, text, text, bigint, bigint, text, integer, integer, text,
    text, uuid, timestamptz, text, text, bigint, bigint, bigint, boolean, jsonb, uuid);
CREATE FUNCTION usage_tracker.log_ai_usage(
    p_user_id            uuid,
    p_user_email         text        DEFAULT NULL,
    p_customer_id        bigint      DEFAULT NULL,
    p_customer_name      text        DEFAULT NULL,
    p_request_type       text        DEFAULT 'report',
    p_session_id         text        DEFAULT NULL,
    p_input_tokens       bigint      DEFAULT 0,
    p_output_tokens      bigint      DEFAULT 0,
    p_model_used         text        DEFAULT 'claude-sonnet-4-20250514',
    p_latency_ms         integer     DEFAULT NULL,
    p_tool_turns         integer     DEFAULT 0,
    p_status             text        DEFAULT 'success',
    p_error_message      text        DEFAULT NULL,
    p_org_id             uuid        DEFAULT NULL,
    p_occurred_at        timestamptz DEFAULT NULL,
    p_idempotency_key    text        DEFAULT NULL,
    p_provider           text        DEFAULT NULL,
    p_cache_read_tokens  bigint      DEFAULT 0,
    p_cache_write_tokens bigint      DEFAULT 0,
    p_reasoning_tokens   bigint      DEFAULT 0,
    p_cached             boolean     DEFAULT false,
    p_metadata           jsonb       DEFAULT NULL,
    p_project_id         uuid        DEFAULT NULL)
RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'log_ai_usage_invoker';
COMMENT ON FUNCTION usage_tracker.log_ai_usage IS
    'Records one AI request and returns its id. Seed 001''s 13 parameters first, then optional ones. Users record only their own usage (p_user_id = JWT sub) in their personal organization (default) or one they belong to; service_role records anything, including the past (p_occurred_at). A retry with the same p_idempotency_key in the same organization returns the first id and is counted once. Cost is computed exactly from usage_tracker.model_prices at the event time; unknown models are logged at zero cost (see list_unknown_models).';

DROP FUNCTION usage_tracker.track_usage_event(uuid, text, bigint, jsonb, timestamptz);
CREATE FUNCTION usage_tracker.track_usage_event(p_org_id uuid, p_event_type text, p_quantity bigint DEFAULT 1,
                                                p_metadata jsonb DEFAULT NULL, p_occurred_at timestamptz DEFAULT now())
RETURNS uuid LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS 'MODULE_PATHNAME', 'track_usage_event_invoker';
COMMENT ON FUNCTION usage_tracker.track_usage_event IS
    'Seed 002: records one usage event of a known type (csv_upload, chat_message, ai_tokens_input, ... or a custom one). Always recorded; consume_quota checks first.';

-- Functions whose arguments, defaults or results changed.
DROP FUNCTION usage_tracker.create_plan(text, text, jsonb, boolean);
DROP FUNCTION usage_tracker_private.create_plan(text, text, jsonb, boolean);
CREATE FUNCTION usage_tracker_private."create_plan"(
	"p_plan" TEXT,
	"p_description" TEXT,
	"p_limits" jsonb,
	"p_is_default" bool,
	"p_base_plan" TEXT
) RETURNS TEXT
VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'create_plan_wrapper';
ALTER FUNCTION usage_tracker_private.create_plan(TEXT, TEXT, jsonb, bool, TEXT) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION usage_tracker_private.create_plan(TEXT, TEXT, jsonb, bool, TEXT) SET jit = off;
CREATE FUNCTION usage_tracker.create_plan(p_plan text, p_description text DEFAULT NULL, p_limits jsonb DEFAULT '{}',
                                          p_is_default boolean DEFAULT false, p_base_plan text DEFAULT NULL)
RETURNS text LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.create_plan($1, $2, $3, $4, $5) $$;
COMMENT ON FUNCTION usage_tracker.create_plan IS
    'Creates or updates a custom plan with limits {"chat_messages": 1000, "ai_tokens": -1} (-1 = unlimited), optionally as the default plan (service_role). Limits the plan does not have yet and p_limits does not list come from p_base_plan; without it they are unlimited (a NOTICE lists them).';

DROP FUNCTION usage_tracker.list_unknown_models(uuid);
DROP FUNCTION usage_tracker_private.list_unknown_models(uuid);
CREATE FUNCTION usage_tracker_private."list_unknown_models"(
	"p_org_id" uuid
) RETURNS TABLE (
	"provider" TEXT,
	"model_used" TEXT,
	"requests" bigint,
	"total_tokens" NUMERIC,
	"first_seen" timestamp with time zone,
	"last_seen" timestamp with time zone,
	"missing" TEXT[]
)
STABLE SECURITY DEFINER PARALLEL UNSAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'list_unknown_models_wrapper';
ALTER FUNCTION usage_tracker_private.list_unknown_models(uuid) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION usage_tracker_private.list_unknown_models(uuid) SET jit = off;
CREATE FUNCTION usage_tracker.list_unknown_models(p_org_id uuid DEFAULT NULL)
RETURNS TABLE (provider text, model_used text, requests bigint, total_tokens numeric,
               first_seen timestamptz, last_seen timestamptz, missing text[])
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM usage_tracker_private.list_unknown_models(p_org_id) $$;
COMMENT ON FUNCTION usage_tracker.list_unknown_models IS
    'Models logged without a price (missing: {price}, at zero cost) or with tokens in a bucket their price has no rate for (missing: {cache_read}, {cache_write}, {reasoning}; those tokens cost nothing), scoped like get_ai_usage_dashboard. Add the prices with set_model_price, then reprice_ai_usage.';

DROP FUNCTION usage_tracker.start_report_run(uuid, uuid, uuid, jsonb, uuid, boolean, integer);
CREATE FUNCTION usage_tracker.start_report_run(p_user_id uuid, p_repository_id uuid DEFAULT NULL,
        p_report_configuration_id uuid DEFAULT NULL, p_configuration_snapshot jsonb DEFAULT NULL,
        p_org_id uuid DEFAULT NULL, p_enforce_limit boolean DEFAULT NULL, p_monthly_limit integer DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r jsonb := usage_tracker_private.start_report_run(p_user_id, p_repository_id, p_report_configuration_id,
                                                      p_configuration_snapshot, p_org_id, p_enforce_limit, p_monthly_limit);
BEGIN
    IF NOT (r ->> 'started')::boolean THEN
        RAISE SQLSTATE 'PT429' USING
            MESSAGE = format('monthly report run limit reached: %s of %s', r ->> 'used', r ->> 'limit'),
            DETAIL = r::text, HINT = 'Runs reset with the next billing period; failed and cancelled runs do not count.';
    END IF;
    RETURN (r ->> 'run_id')::uuid;
END
$$;
COMMENT ON FUNCTION usage_tracker.start_report_run IS
    'Starts a report run (status running) in p_org_id (default: the user''s personal organization) and returns its id. Users are always held to their plan''s report_runs_per_user (running and successful runs this billing period; p_monthly_limit may only lower it), atomically; at the limit it raises PT429 (HTTP 429 through PostgREST). service_role chooses: p_enforce_limit (default false) and p_monthly_limit (default the plan''s).';

DROP FUNCTION usage_tracker.check_monthly_usage_limit(uuid, integer, uuid);
CREATE FUNCTION usage_tracker.check_monthly_usage_limit(p_user_id uuid, p_limit integer DEFAULT NULL, p_org_id uuid DEFAULT NULL)
RETURNS boolean LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.check_monthly_usage_limit($1, $2, $3) $$;
COMMENT ON FUNCTION usage_tracker.check_monthly_usage_limit IS
    'Seed 004: true while the user has fewer than p_limit (default: the plan''s report_runs_per_user, 50 on the shipped plans) successful runs this billing period, in p_org_id (default: the user''s personal organization). Yourself, or a member of an organization you administer.';

DROP FUNCTION usage_tracker.usage_compare_organizations(date, date, text);
CREATE FUNCTION usage_tracker.usage_compare_organizations(p_start_date date, p_end_date date, p_type text DEFAULT NULL)
RETURNS TABLE (org_id uuid, type text, count numeric, share_pct numeric, rank bigint)
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM pg_catalog.jsonb_to_recordset(usage_tracker_private.usage_compare_organizations($1, $2, $3))
      AS a (org_id uuid, type text, count numeric, share_pct numeric, rank bigint) $$;
COMMENT ON FUNCTION usage_tracker.usage_compare_organizations IS 'Seed 000 analysis 4: usage across organizations, with share and rank (service_role only). Counts are numeric: one organization''s total past bigint cannot break the comparison for the others.';

COMMENT ON FUNCTION usage_tracker.get_monthly_usage IS
    'Seed 004''s monthly usage of a user for the current billing period of p_org_id (default: the user''s personal organization): total, successful and failed runs, tokens, cost, last run. Yourself, or a member of an organization you administer.';
COMMENT ON FUNCTION usage_tracker.run_maintenance IS
    'All periodic work (service_role, owner or pg_cron): creates log partitions ahead, expires reservations and stuck report runs, folds the rollups, applies retention. Each step succeeds or fails on its own (ok, errors in the result). Safe to call any time, concurrently.';

-- Schemas, tables, sequences, functions: from every API role, then exactly
-- what the design grants; log partitions grant nothing.
REVOKE ALL ON SCHEMA usage_tracker FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON SCHEMA usage_tracker_private FROM PUBLIC, anon, authenticated, service_role;
GRANT USAGE ON SCHEMA usage_tracker TO authenticated, service_role;
GRANT USAGE ON SCHEMA usage_tracker_private TO authenticated, service_role;
DO $partitions$
DECLARE p regclass;
BEGIN
    FOR p IN SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits i
              WHERE i.inhparent = 'usage_tracker.ai_usage_log'::pg_catalog.regclass
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM PUBLIC, anon, authenticated, service_role', p);
    END LOOP;
END
$partitions$;
-- From every role the extension knows, whatever a database's default
-- privileges granted at creation (ALTER DEFAULT PRIVILEGES ... TO
-- authenticated would otherwise give TRUNCATE on the log): then grant
-- exactly what the design says.
REVOKE ALL ON ALL TABLES IN SCHEMA usage_tracker, usage_tracker_private FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA usage_tracker, usage_tracker_private FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA usage_tracker, usage_tracker_private FROM PUBLIC, anon, authenticated, service_role;

GRANT SELECT ON usage_tracker.org_members, usage_tracker.ai_usage_log,
                usage_tracker.model_prices, usage_tracker.request_types,
                usage_tracker.organizations, usage_tracker.usage_events, usage_tracker.usage_detail,
                usage_tracker.organization_usage, usage_tracker.quota_reservations,
                usage_tracker.event_types, usage_tracker.limit_definitions, usage_tracker.limit_settings,
                usage_tracker.plans, usage_tracker.plan_limits,
                usage_tracker.budgets, usage_tracker.budget_alerts,
                usage_tracker.report_runs, usage_tracker.user_monthly_usage,
                usage_tracker.retention_policies, usage_tracker.ai_usage_user_hourly,
                usage_tracker.ai_usage_user_daily, usage_tracker.ai_usage_customer_users
    TO authenticated, service_role;
GRANT SELECT ON usage_tracker.ai_usage_hourly, usage_tracker.ai_usage_daily,
                usage_tracker.ai_usage_customer_hourly, usage_tracker.ai_usage_customer_daily,
                usage_tracker.projects
    TO service_role;

DO $grants$
DECLARE
    f regprocedure;
    -- Callable by signed-in users (each checks what the caller may do).
    user_fns text[] := ARRAY['uid', 'limits', 'log_ai_usage', 'log_ai_usage_batch', 'get_ai_usage_dashboard', 'get_user_ai_usage',
                             'get_ai_cost_summary', 'list_unknown_models', 'pre_request',
                             'increment_organization_usage', 'get_usage_count', 'get_message_count',
                             'get_reasoning_count', 'get_usage_counts', 'get_organization_usage_summary',
                             'get_usage_details', 'usage_analysis', 'usage_daily_by_type', 'usage_weekly',
                             'usage_month_over_month', 'usage_hourly_pattern', 'usage_message_reasoning_ratio',
                             'track_usage_event', 'track_usage_events', 'check_usage_limit', 'get_usage_summary', 'get_usage_limits',
                             'get_quota_status', 'consume_quota', 'reserve_quota', 'commit_reservation',
                             'release_reservation', 'set_budget', 'delete_budget', 'get_budget_status',
                             'start_report_run', 'update_report_run', 'mark_run_success', 'mark_run_failed',
                             'cancel_report_run', 'record_webhook_attempt', 'get_report_runs', 'get_report_run',
                             'get_monthly_usage', 'check_monthly_usage_limit', 'create_project',
                             'list_projects', 'aggregate_usage_hourly', 'aggregate_usage_daily',
                             'get_dashboard_stats'];
    -- Trusted callers only.
    service_fns text[] := ARRAY['set_model_price', 'add_request_type', 'set_org_member',
                                'remove_org_member', 'run_maintenance', 'set_org_plan', 'set_org_settings',
                                'create_plan', 'set_plan_limit', 'define_limit', 'add_event_type', 'set_limit_source',
                                'usage_compare_organizations', 'get_pending_alerts', 'mark_alert_delivered',
                                'set_retention', 'verify_rollups', 'rollup_lag', 'rebuild_rollups',
                                'backfill_potential_cost', 'reprice_ai_usage', 'rollup_gaps'];
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private')
           AND p.proname = ANY (user_fns)
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO authenticated, service_role', f);
    END LOOP;
    FOR f IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('usage_tracker', 'usage_tracker_private')
           AND p.proname = ANY (service_fns)
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO service_role', f);
    END LOOP;
END
$grants$;
