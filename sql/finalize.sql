-- usage_tracker finalize: public wrappers, row level security, grants and
-- pg_dump registration. Runs after every function pgrx generates.

------------------------------------------------------------------------------
-- Definer bodies compute days and months in UTC, whatever the session says.
------------------------------------------------------------------------------
ALTER FUNCTION usage_tracker_private.get_ai_usage_dashboard(integer, uuid) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.get_user_ai_usage(uuid, integer) SET TimeZone = 'UTC';
ALTER FUNCTION usage_tracker_private.get_ai_cost_summary(uuid) SET TimeZone = 'UTC';

------------------------------------------------------------------------------
-- Public API: SECURITY INVOKER wrappers with the seeds' names, parameter
-- names and defaults. PostgREST exposes these; the definer bodies they call
-- check who the caller is.
------------------------------------------------------------------------------
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
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$
    SELECT usage_tracker_private.log_ai_usage(
        p_user_id, p_user_email, p_customer_id, p_customer_name, p_request_type, p_session_id,
        p_input_tokens, p_output_tokens, p_model_used, p_latency_ms, p_tool_turns, p_status,
        p_error_message, p_org_id, p_occurred_at, p_idempotency_key, p_provider,
        p_cache_read_tokens, p_cache_write_tokens, p_reasoning_tokens, p_cached, p_metadata,
        p_project_id)
$$;
COMMENT ON FUNCTION usage_tracker.log_ai_usage IS
    'Records one AI request and returns its id. Seed 001''s 13 parameters first, then optional ones. Users record only their own usage (p_user_id = JWT sub) in their personal organization (default) or one they belong to; service_role records anything, including the past (p_occurred_at). A retry with the same p_idempotency_key in the same organization returns the first id and is counted once. Cost is computed exactly from usage_tracker.model_prices at the event time; unknown models are logged at zero cost (see list_unknown_models).';

CREATE FUNCTION usage_tracker.get_ai_usage_dashboard(p_days integer DEFAULT 30, p_org_id uuid DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_ai_usage_dashboard(p_days, p_org_id) $$;
COMMENT ON FUNCTION usage_tracker.get_ai_usage_dashboard IS
    'Seed 001''s dashboard JSON (summary, costs, by_user, by_customer, daily_trend, by_request_type, current_month, previous_month) over the last p_days (1..3660) days, in UTC. With p_org_id: the organization (admins and owners) or your own usage in it (members). Without: your own usage plus every organization you administer; service_role sees everything.';

CREATE FUNCTION usage_tracker.get_user_ai_usage(p_user_id uuid, p_days integer DEFAULT 30)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_user_ai_usage(p_user_id, p_days) $$;
COMMENT ON FUNCTION usage_tracker.get_user_ai_usage IS
    'Seed 001''s per-user JSON (summary, recent_requests, daily_usage) over the last p_days days, in UTC. Your own usage, or a member''s usage in organizations you administer.';

CREATE FUNCTION usage_tracker.get_ai_cost_summary(p_org_id uuid DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.get_ai_cost_summary(p_org_id) $$;
COMMENT ON FUNCTION usage_tracker.get_ai_cost_summary IS
    'Seed 001''s cost totals: today, yesterday, this_week, this_month, last_month, all_time, requests_today, requests_this_month (UTC), scoped like get_ai_usage_dashboard.';

CREATE FUNCTION usage_tracker.list_unknown_models(p_org_id uuid DEFAULT NULL)
RETURNS TABLE (provider text, model_used text, requests bigint, total_tokens numeric,
               first_seen timestamptz, last_seen timestamptz)
LANGUAGE sql STABLE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT * FROM usage_tracker_private.list_unknown_models(p_org_id) $$;
COMMENT ON FUNCTION usage_tracker.list_unknown_models IS
    'Models logged without a price (at zero cost), scoped like get_ai_usage_dashboard. Add their prices with set_model_price.';

CREATE FUNCTION usage_tracker.set_model_price(
    p_provider                 text,
    p_model                    text,
    p_effective_from           timestamptz,
    p_input_usd_per_mtok       numeric,
    p_output_usd_per_mtok      numeric,
    p_cache_read_usd_per_mtok  numeric DEFAULT NULL,
    p_cache_write_usd_per_mtok numeric DEFAULT NULL,
    p_reasoning_usd_per_mtok   numeric DEFAULT NULL)
RETURNS integer
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$
    SELECT usage_tracker_private.set_model_price(
        p_provider, p_model, p_effective_from, p_input_usd_per_mtok, p_output_usd_per_mtok,
        p_cache_read_usd_per_mtok, p_cache_write_usd_per_mtok, p_reasoning_usd_per_mtok)
$$;
COMMENT ON FUNCTION usage_tracker.set_model_price IS
    'Adds a price version, USD per million tokens (service_role). Cache prices default to the input price, the reasoning price to the output price. Returns the price_id.';

CREATE FUNCTION usage_tracker.add_request_type(p_request_type text, p_description text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.add_request_type(p_request_type, p_description) $$;
COMMENT ON FUNCTION usage_tracker.add_request_type IS
    'Adds a request type log_ai_usage accepts (service_role). Returns false when it existed.';

CREATE FUNCTION usage_tracker.set_org_member(p_org_id uuid, p_user_id uuid, p_role text DEFAULT 'member')
RETURNS text
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.set_org_member(p_org_id, p_user_id, p_role) $$;
COMMENT ON FUNCTION usage_tracker.set_org_member IS
    'Adds a user to an organization or changes their role: member, admin or owner (service_role).';

CREATE FUNCTION usage_tracker.remove_org_member(p_org_id uuid, p_user_id uuid)
RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.remove_org_member(p_org_id, p_user_id) $$;
COMMENT ON FUNCTION usage_tracker.remove_org_member IS
    'Removes a user from an organization (service_role); their logged usage stays.';

CREATE FUNCTION usage_tracker.run_maintenance()
RETURNS jsonb
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
AS $$ SELECT usage_tracker_private.run_maintenance() $$;
COMMENT ON FUNCTION usage_tracker.run_maintenance IS
    'All periodic work (service_role, owner or pg_cron): creates log partitions ahead. Safe to call any time, concurrently.';

CREATE FUNCTION usage_tracker.pre_request()
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- On Citus, claims set with set_config() do not reach the workers that
    -- evaluate RLS; a SET LOCAL propagated by Citus does. Elsewhere: nothing.
    IF pg_catalog.current_setting('citus.propagate_set_commands', true) IS NOT NULL THEN
        PERFORM pg_catalog.set_config('citus.propagate_set_commands', 'local', true);
        EXECUTE pg_catalog.format('SET LOCAL request.jwt.claims = %L',
            COALESCE(pg_catalog.current_setting('request.jwt.claims', true), ''));
    END IF;
END
$$;
COMMENT ON FUNCTION usage_tracker.pre_request IS
    'For PostgREST''s db-pre-request setting: on Citus, re-issues the request''s JWT claims as a propagated SET LOCAL so RLS works on the workers; does nothing elsewhere.';

COMMENT ON FUNCTION usage_tracker.uid IS
    'The request''s user id (JWT sub from request.jwt.claims, else request.jwt.claim.sub), like auth.uid(); NULL for missing, empty or malformed claims.';

------------------------------------------------------------------------------
-- Row level security. Policies decide from the row and the JWT claims only
-- (no subqueries, no lookups: Citus rejects them); org-wide reads for
-- admins go through the functions.
------------------------------------------------------------------------------
ALTER TABLE usage_tracker.org_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY org_members_select_own ON usage_tracker.org_members
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY org_members_select_service ON usage_tracker.org_members
    FOR SELECT TO service_role USING (true);

ALTER TABLE usage_tracker.ai_usage_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY ai_usage_log_select_own ON usage_tracker.ai_usage_log
    FOR SELECT TO authenticated USING (user_id = usage_tracker.uid());
CREATE POLICY ai_usage_log_select_service ON usage_tracker.ai_usage_log
    FOR SELECT TO service_role USING (true);

-- The price catalog and the request types are reference data every
-- signed-in caller may read.
ALTER TABLE usage_tracker.model_prices ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_prices_select ON usage_tracker.model_prices
    FOR SELECT TO authenticated, service_role USING (true);

ALTER TABLE usage_tracker.request_types ENABLE ROW LEVEL SECURITY;
CREATE POLICY request_types_select ON usage_tracker.request_types
    FOR SELECT TO authenticated, service_role USING (true);

------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC or anon; reads for signed-in callers;
-- writes only through the functions.
------------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA usage_tracker, usage_tracker_private FROM PUBLIC, anon;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA usage_tracker, usage_tracker_private FROM PUBLIC, anon;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA usage_tracker, usage_tracker_private FROM PUBLIC, anon;

GRANT SELECT ON usage_tracker.org_members, usage_tracker.ai_usage_log,
                usage_tracker.model_prices, usage_tracker.request_types
    TO authenticated, service_role;

DO $grants$
DECLARE
    f regprocedure;
    -- Callable by signed-in users (each checks what the caller may do).
    user_fns text[] := ARRAY['uid', 'log_ai_usage', 'get_ai_usage_dashboard', 'get_user_ai_usage',
                             'get_ai_cost_summary', 'list_unknown_models', 'pre_request'];
    -- Trusted callers only.
    service_fns text[] := ARRAY['set_model_price', 'add_request_type', 'set_org_member',
                                'remove_org_member', 'run_maintenance'];
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

------------------------------------------------------------------------------
-- pg_dump keeps the rows of the extension's tables (not the shipped ones,
-- which the extension script recreates) and the sequence positions.
-- Log partitions are created after installation, so pg_dump dumps them as
-- ordinary tables.
------------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.org_members', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.model_prices', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker.request_types', 'WHERE NOT shipped');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker_private.ai_usage_idempotency', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker_private.model_prices_price_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('usage_tracker_private.ai_usage_log_ingest_seq', '');
