-- usage_tracker 0.2.0 -> 0.3.0: hardening against adversarial tenants.
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

ALTER TABLE usage_tracker.limit_definitions ADD COLUMN per_user boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN usage_tracker.limit_definitions.per_user IS 'True for a limit per user rather than per organization (report_runs_per_user, enforced by start_report_run); quota checks skip it';
INSERT INTO usage_tracker.limit_definitions (limit_key, event_types, unit, period, shipped, per_user) VALUES
    ('report_runs_per_user', '{report_run}', 'runs', 'billing_period', true, true);
INSERT INTO usage_tracker.plan_limits (plan, limit_key, max_quantity, shipped) VALUES
    ('trial', 'report_runs_per_user', 50, true), ('pilot', 'report_runs_per_user', 50, true),
    ('subscription', 'report_runs_per_user', 50, true);

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

-- Wrappers whose defaults or result types changed.
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
                usage_tracker.event_types, usage_tracker.limit_definitions,
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
    user_fns text[] := ARRAY['uid', 'limits', 'log_ai_usage', 'get_ai_usage_dashboard', 'get_user_ai_usage',
                             'get_ai_cost_summary', 'list_unknown_models', 'pre_request',
                             'increment_organization_usage', 'get_usage_count', 'get_message_count',
                             'get_reasoning_count', 'get_usage_counts', 'get_organization_usage_summary',
                             'get_usage_details', 'usage_analysis', 'usage_daily_by_type', 'usage_weekly',
                             'usage_month_over_month', 'usage_hourly_pattern', 'usage_message_reasoning_ratio',
                             'track_usage_event', 'check_usage_limit', 'get_usage_summary', 'get_usage_limits',
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
                                'create_plan', 'set_plan_limit', 'define_limit', 'add_event_type',
                                'usage_compare_organizations', 'get_pending_alerts', 'mark_alert_delivered',
                                'set_retention', 'verify_rollups', 'rebuild_rollups',
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
